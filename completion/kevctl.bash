# bash completion for kevctl (docs/kevctl.md).  VM names come from the
# daemon through the hidden `kevctl __names`, snapshot names through
# `kevctl __snapshots`, with the same --socket/--url the command line
# already has.
_kevctl()
{
	local cur prev words cword
	_init_completion 2>/dev/null || {
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	}
	local commands="ls create run show paging console start stop pause resume rm snapshot snapshots snapshot-show
		snapshot-rm restore translate images health metrics version"
	local global="--socket --url --token-file --json --help --version"
	local i cmd= conn=() nargs=0
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--socket|--url|--token-file) conn+=("${words[i]}" "${words[i+1]}"); ((i++)) ;;
		-*) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done
	# The operands before the word being completed (snapshot's second is a new name).
	for ((i++; i < cword; i++)); do
		case ${words[i]} in
		--socket|--url|--token-file|--name|--kernel|--initrd|--memory|--vcpus|--cmdline|--paging|--window|\
		--window-max|--protocol|--gpa|--gva|--vcpu|--offset) ((i++)) ;;
		-*) ;;
		*) nargs=$((nargs + 1)) ;;
		esac
	done
	case $prev in
	--socket|--token-file|--kernel|--initrd) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--url) COMPREPLY=($(compgen -W "http://127.0.0.1:" -- "$cur")); return ;;
	--protocol) COMPREPLY=($(compgen -W "auto pvh multiboot2" -- "$cur")); return ;;
	--paging) COMPREPLY=($(compgen -W "lazy lazy-private eager" -- "$cur")); return ;;
	--name|--memory|--vcpus|--cmdline|--window|--window-max|--gpa|--gva|--vcpu|--offset) return ;;
	esac
	if [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "$commands $global" -- "$cur"))
		return
	fi
	local opts="--json --help"
	case $cmd in
	create) opts+=" --name --kernel --initrd --memory --vcpus --cmdline --paging --eager --window --window-max --protocol --no-start" ;;
	run) opts+=" --name --kernel --initrd --memory --vcpus --cmdline --paging --eager --window --window-max --protocol --rm" ;;
	console) opts+=" -f --follow --offset" ;;
	snapshot) opts+=" --stop" ;;
	restore) opts+=" --name --paging --eager --window --window-max --no-start" ;;
	translate) opts+=" --gpa --gva --vcpu" ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		return
	fi
	((nargs == 0)) || return
	case $cmd in
	show|paging|console|start|stop|pause|resume|rm|translate|snapshot)
		COMPREPLY=($(compgen -W "$(kevctl "${conn[@]}" __names 2>/dev/null)" -- "$cur")) ;;
	snapshot-show|snapshot-rm|restore)
		COMPREPLY=($(compgen -W "$(kevctl "${conn[@]}" __snapshots 2>/dev/null)" -- "$cur")) ;;
	esac
}
complete -F _kevctl kevctl
