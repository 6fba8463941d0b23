# Sourced by the shell tests that run a real kevd (POSIX sh): what each of
# them needs the same way.

# kevd_stop PID [TENTHS]: SIGTERM, then SIGKILL if PID is still there after
# TENTHS tenths of a second (default 50); nothing for an empty PID.
kevd_stop() {
	if [ -n "$1" ] && kill -0 "$1" 2> /dev/null; then
		kill -TERM "$1" 2> /dev/null || :
		_i=0
		while kill -0 "$1" 2> /dev/null && [ "$_i" -lt "${2:-50}" ]; do
			sleep 0.1
			_i=$((_i + 1))
		done
		kill -KILL "$1" 2> /dev/null || :
	fi
}

# kevd_port: a random TCP port in 20000..49999; a caller whose port turns
# out to be taken tries another.
kevd_port() {
	echo $(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 + 20000 ))
}

# kevd_images DIR GUEST: an image directory holding a copy of GUEST as
# guest.elf.  A copy, not a link: a symlink leading out would be refused,
# and a hard link made and removed moves the guest's ctime, which kevd
# takes for a change of the file under the VMs of other tests using it.
kevd_images() {
	mkdir "$1"
	cp "$2" "$1/guest.elf"
}

# kevd_conf FILE SOCK DIR: the smallest configuration a test daemon needs:
# its socket, DIR for state and runtime files, DIR/images for images, and
# warnings only in the log.
kevd_conf() {
	printf '[api]\nsocket = %s\n[paths]\nimage_dir = %s/images\nstate_dir = %s\nruntime_dir = %s\n[log]\nlevel = warn\n' \
		"$2" "$3" "$3" "$3" > "$1"
}

# kevd_ready PID CMD...: waits (5 s at most) until CMD succeeds, i.e. the
# daemon PID answers; fails, reaping PID, if it exits first (say its port
# was taken), and fails, stopping it, if it stays silent.
kevd_ready() {
	_pid=$1
	shift
	_i=0
	while [ "$_i" -lt 100 ]; do
		kill -0 "$_pid" 2> /dev/null || { wait "$_pid" || :; return 1; }
		"$@" > /dev/null 2>&1 && return 0
		sleep 0.05
		_i=$((_i + 1))
	done
	kevd_stop "$_pid"
	return 1
}
