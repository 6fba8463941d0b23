#!/bin/sh
# The reference docs against what a live kevd emits, both ways:
#   - docs/metrics.md's table of metrics against the families of a real
#     scrape of /metrics: the same names, each with its documented type and
#     exactly the documented labels, and the per-VM and per-vCPU series
#     counts the file states;
#   - docs/api.md's table of the fields of GET /v1/vms/{vm}/paging against
#     the top-level keys of a real answer;
#   - every relative link of README.md and docs/*.md: its file exists, and
#     its #anchor, into a Markdown file, is one of that file's headings.
# A daemon without VMs already names every metric family, so that part
# needs no /dev/kvm; the labels, the series counts and the paging fields
# need a running VM and are skipped (said so, still a pass) without it.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$top_builddir}
kevd="$top_builddir/kevd"
guest="$top_builddir/tests/guests/testguest.elf"
metrics_md="$top_srcdir/docs/metrics.md"
api_md="$top_srcdir/docs/api.md"
me=docs.sh

if ! command -v curl > /dev/null 2>&1; then
	echo "$me: curl is not installed: skipped"
	exit 77
fi
for f in "$kevd" "$metrics_md" "$api_md"; do
	[ -r "$f" ] || { echo "$me: $f is missing"; exit 1; }
done
have_kvm=no
if (exec 3<> /dev/kvm) 2> /dev/null && [ -r "$guest" ]; then
	have_kvm=yes
fi

. "$top_srcdir/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-docs-XXXXXX")
pid=
cleanup() {
	kevd_stop "$pid" 100
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

errors=0
fail() { echo "$me: FAIL: $*"; errors=$((errors + 1)); }
die() { echo "$me: $*"; [ -f "$tmp/kevd.log" ] && sed 's/^/kevd: /' "$tmp/kevd.log"; exit 1; }

# same WHAT DOCUMENTED EMITTED: both sorted lists hold the same lines.
same() {
	comm -23 "$2" "$3" > "$tmp/only_doc"
	comm -13 "$2" "$3" > "$tmp/only_live"
	[ ! -s "$tmp/only_doc" ] || fail "$1 documented but not emitted: $(tr '\n' ' ' < "$tmp/only_doc")"
	[ ! -s "$tmp/only_live" ] || fail "$1 emitted but not documented: $(tr '\n' ' ' < "$tmp/only_live")"
}

# ---- what the docs say ----
# metrics.md, "## The metrics": "| `name` | type | `label`, `label` | meaning |"
awk -F'|' '
	/^## / { in_ = ($0 == "## The metrics"); next }
	in_ && /^\| `kevd_/ {
		name = $2; gsub(/[` ]/, "", name)
		type = $3; gsub(/ /, "", type)
		labels = $4; gsub(/[` ]/, "", labels); gsub(/,/, " ", labels)
		print name, type, labels
	}
' "$metrics_md" > "$tmp/doc_metrics"
[ -s "$tmp/doc_metrics" ] || die "no metrics table found in $metrics_md"
cut -d' ' -f1 "$tmp/doc_metrics" | sort > "$tmp/doc_names"
[ "$(uniq -d "$tmp/doc_names")" = "" ] || fail "$metrics_md lists a metric twice: $(uniq -d "$tmp/doc_names")"
cut -d' ' -f1,2 "$tmp/doc_metrics" | sort > "$tmp/doc_types"
awk '{ l = ""; for (i = 3; i <= NF; i++) l = l (i > 3 ? "," : "") $i; print $1, l }' "$tmp/doc_metrics" |
	sort > "$tmp/doc_labels_raw"
# Labels in a canonical order, so that the order in the table does not matter.
while read -r n l; do
	echo "$n $(echo "$l" | tr ',' '\n' | sort | tr '\n' ',' | sed 's/,$//')"
done < "$tmp/doc_labels_raw" | sort > "$tmp/doc_labels"
# metrics.md's stated cardinality: "Cardinality per VM: N series (...) plus K per vCPU"
tr '\n' ' ' < "$metrics_md" |
	sed -n 's/.*Cardinality per VM: \([0-9][0-9]*\) series.* plus \([0-9][0-9]*\) per vCPU.*/\1 \2/p' > "$tmp/doc_card"

# api.md, "### GET /v1/vms/{vm}/paging": every `name` in the first column
# of its field table ("`vcpus[]`" is the key vcpus).
awk -F'|' '
	/^###? / { in_ = ($0 == "### GET /v1/vms/{vm}/paging"); next }
	in_ && /^\| `/ {
		s = $2
		while (match(s, /`[a-z_0-9]+(\[\])?`/)) {
			k = substr(s, RSTART + 1, RLENGTH - 2); sub(/\[\]$/, "", k); print k
			s = substr(s, RSTART + RLENGTH)
		}
	}
' "$api_md" | sort -u > "$tmp/doc_paging"
[ -s "$tmp/doc_paging" ] || die "no paging field table found in $api_md"

# ---- links between the docs ----
# anchors FILE: the GitHub anchors of FILE's headings (outside code blocks):
# lower case, only letters, digits, '_', '-' and spaces, spaces as '-'.
anchors() {
	awk '
		/^```/ { code = !code; next }
		!code && /^#+ / {
			h = $0; sub(/^#+ /, "", h); h = tolower(h)
			gsub(/[^a-z0-9_ -]/, "", h); gsub(/ /, "-", h)
			print h
		}
	' "$1"
}
for doc in "$top_srcdir/README.md" "$top_srcdir"/docs/*.md; do
	# "](target)" outside code blocks, but URLs.
	awk '
		/^```/ { code = !code; next }
		code { next }
		{
			s = $0
			while (match(s, /\]\([^) ]+\)/)) {
				t = substr(s, RSTART + 2, RLENGTH - 3)
				if (t !~ /^[a-z]+:/) print t
				s = substr(s, RSTART + RLENGTH)
			}
		}
	' "$doc" > "$tmp/links"
	while read -r t; do
		f=${t%%#*}
		a=
		case $t in *'#'*) a=${t#*#} ;; esac
		[ -n "$f" ] && target=$(dirname "$doc")/$f || target=$doc
		if [ ! -e "$target" ]; then
			fail "${doc#"$top_srcdir"/}: link to $t: no such file"
		elif [ -n "$a" ] && case $target in *.md) true ;; *) false ;; esac &&
			! anchors "$target" | grep -qxF "$a"; then
			fail "${doc#"$top_srcdir"/}: link to $t: no such heading in $f"
		fi
	done < "$tmp/links"
done

# ---- the daemon ----
mkdir "$tmp/images"
[ "$have_kvm" = no ] || cp "$guest" "$tmp/images/guest.elf"
sock="$tmp/kevd.sock"
kevd_conf "$tmp/kevd.conf" "$sock" "$tmp"
"$kevd" serve --config "$tmp/kevd.conf" > "$tmp/kevd.log" 2>&1 &
pid=$!
api() { curl -sS -g --max-time 15 --unix-socket "$sock" -H 'Content-Type: application/json' "$@"; }
i=0
until [ -S "$sock" ] && api -o /dev/null http://localhost/v1/health 2> /dev/null; do
	kill -0 "$pid" 2> /dev/null || { pid=; die "kevd serve exited"; }
	[ "$i" -lt 100 ] || die "kevd did not answer on $sock within 10 s"
	sleep 0.1
	i=$((i + 1))
done

# families FILE: "name type" of every # TYPE line of a scrape.
families() { sed -n 's/^# TYPE \([^ ]*\) \([^ ]*\)$/\1 \2/p' "$1" | sort; }

# ---- metric names and types: a daemon with no VM names every family ----
api http://localhost/metrics > "$tmp/scrape0" || die "GET /metrics failed"
families "$tmp/scrape0" > "$tmp/live_types"
cut -d' ' -f1 "$tmp/live_types" > "$tmp/live_names"
same "metrics (no VM):" "$tmp/doc_names" "$tmp/live_names"
same "metric types:" "$tmp/doc_types" "$tmp/live_types"

if [ "$have_kvm" = no ]; then
	echo "$me: /dev/kvm cannot be opened: labels, series counts and paging fields not checked"
else
	# A lazy VM of 2 vCPUs that faults a little and then spins in ring 3.
	api -o "$tmp/vm.json" -X POST \
		-d '{"name":"docs","kernel":"guest.elf","memory_mib":64,"vcpus":2,"cmdline":"touch=percent:5 mode=loop"}' \
		http://localhost/v1/vms || die "cannot create a VM"
	grep -q '"state":"running"' "$tmp/vm.json" || die "the VM did not start: $(cat "$tmp/vm.json")"

	# ---- every family again, now with series: labels as documented ----
	api http://localhost/metrics > "$tmp/scrape1" || die "GET /metrics failed"
	families "$tmp/scrape1" > "$tmp/live_types1"
	same "metrics (one VM):" "$tmp/doc_types" "$tmp/live_types1"
	# "family label,label": the union of the label names of its samples
	# (a histogram's _bucket, _sum and _count belong to it).
	awk '
		/^# TYPE / { fam[$3] = $4; next }
		/^#/ || NF == 0 { next }
		{
			name = $1; sub(/\{.*/, "", name)
			f = name
			if (!(f in fam)) { f2 = f; sub(/_(bucket|sum|count)$/, "", f2); if (fam[f2] == "histogram") f = f2 }
			if (!(f in fam)) { print "UNTYPED " name; next }
			seen[f] = 1
			if (match($1, /\{.*\}/)) {
				s = substr($1, RSTART + 1, RLENGTH - 2)
				n = split(s, kv, ",")
				for (i = 1; i <= n; i++) { split(kv[i], p, "="); lab[f, p[1]] = 1; labs[f] = labs[f] " " p[1] }
			}
		}
		END {
			for (f in seen) {
				n = split(labs[f], l, " "); out = ""
				delete u
				for (i = 1; i <= n; i++) if (!(l[i] in u)) { u[l[i]] = 1; out = out " " l[i] }
				print f, out
			}
		}
	' "$tmp/scrape1" > "$tmp/live_labels_raw"
	! grep '^UNTYPED ' "$tmp/live_labels_raw" > "$tmp/untyped" || fail "samples without a # TYPE: $(tr '\n' ' ' < "$tmp/untyped")"
	grep -v '^UNTYPED ' "$tmp/live_labels_raw" | while read -r n l; do
		echo "$n $(echo "$l" | tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ',' | sed 's/,$//')"
	done | sort > "$tmp/live_labels"
	cut -d' ' -f1 "$tmp/live_labels" > "$tmp/live_with_series"
	same "metrics with series:" "$tmp/doc_names" "$tmp/live_with_series"
	same "metric labels (name labels):" "$tmp/doc_labels" "$tmp/live_labels"

	# ---- the cardinality metrics.md states ----
	if [ ! -s "$tmp/doc_card" ]; then
		fail "$metrics_md states no 'Cardinality per VM: N series ... plus K per vCPU'"
	else
		doc_vm=$(cut -d' ' -f1 "$tmp/doc_card")
		doc_vcpu=$(cut -d' ' -f2 "$tmp/doc_card")
		live_vm=$(grep '{vm="docs"' "$tmp/scrape1" | grep -vc 'vcpu="' | tr -d ' ') || :
		live_vcpu=$(grep -c '{vm="docs",vcpu="0"' "$tmp/scrape1" | tr -d ' ') || :
		[ "$live_vm" = "$doc_vm" ] || fail "a VM has $live_vm series of its own, $metrics_md says $doc_vm"
		[ "$live_vcpu" = "$doc_vcpu" ] || fail "a vCPU has $live_vcpu series, $metrics_md says $doc_vcpu"
	fi

	# ---- the paging fields ----
	api http://localhost/v1/vms/docs/paging > "$tmp/paging" || die "GET /v1/vms/docs/paging failed"
	# The keys of the top-level object, with a small JSON scanner (strings
	# with escapes, nesting) rather than a pattern that would also find the
	# keys of the nested objects.
	awk '
		{ s = s $0 "\n" }
		END {
			n = length(s); depth = 0; instr = 0; esc = 0
			for (i = 1; i <= n; i++) {
				c = substr(s, i, 1)
				if (instr) {
					if (esc) esc = 0
					else if (c == "\\") esc = 1
					else if (c == "\"") instr = 0
					else buf = buf c
					continue
				}
				if (c == "\"") { instr = 1; buf = ""; continue }
				if (c == "{" || c == "[") { kind[++depth] = c; continue }
				if (c == "}" || c == "]") { depth--; continue }
				if (c == ":" && depth == 1 && kind[1] == "{") print buf
			}
		}
	' "$tmp/paging" | sort > "$tmp/live_paging"
	[ -s "$tmp/live_paging" ] || fail "no keys in the paging answer: $(head -c 200 "$tmp/paging")"
	[ "$(uniq -d "$tmp/live_paging")" = "" ] || fail "the paging answer repeats a key: $(uniq -d "$tmp/live_paging")"
	same "paging fields:" "$tmp/doc_paging" "$tmp/live_paging"
fi

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "kevd exited $rc after SIGTERM"

if [ "$errors" -ne 0 ]; then
	sed 's/^/kevd: /' "$tmp/kevd.log"
	echo "$me: $errors failure(s)"
	exit 1
fi
echo "$me: the relative links and anchors of README.md and docs/*.md resolve"
if [ "$have_kvm" = yes ]; then
	echo "$me: $(wc -l < "$tmp/doc_names") metrics (names, types, labels, series per VM and vCPU) and" \
		"$(wc -l < "$tmp/doc_paging") paging fields match $metrics_md and $api_md"
else
	echo "$me: $(wc -l < "$tmp/doc_names") metric names and types match $metrics_md"
fi
