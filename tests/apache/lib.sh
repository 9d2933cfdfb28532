# shellcheck shell=bash
# Shared by e2e.sh and bench.sh: a private Apache (its own config, ports,
# logs and run directory under $WORK) serving two document roots, each
# deployed exactly as cgi-bin/README.md tells a user to:
#
#   http://127.0.0.1:$PORT_CGI/api/...   -> www-cgi/cgi-bin/strata.cgi     (mod_cgid)
#   http://127.0.0.1:$PORT_FCGID/api/... -> www-fcgid/cgi-bin/strata.fcgi (mod_fcgid)
#
# The shipped .htaccess files are copied verbatim; only the example paths
# (data directory, users file) are filled in. Accounts are on, as on any
# real host: setup_apache creates the tenant "default" and a writer token
# for it in each data directory (TOKEN_CGI, TOKEN_FCGID), which the clients
# send as "Authorization: Bearer …" (it reaches the program through the
# shipped CGIPassAuth On). The system Apache (/etc/apache2, port 80) is not
# touched.
#
# As root, the data directories are set up as cgi-bin/README.md tells a
# user of a host without suEXEC: owned by a user of their own (CLI_USER, in
# the www-data group, created here with useradd), given to the www-data
# group with chgrp and chmod 770 by that user, who runs every strata
# command line; Apache runs strata as www-data. So the command line and
# the web server are different users, as on such a host.
#
# Needs: apache2, libapache2-mod-fcgid, curl. Run as root (Apache then
# drops to www-data, as on a real host); as another user Apache keeps it,
# and the command line runs as that user too.

APACHE_BIN=${APACHE_BIN:-/usr/sbin/apache2}
APACHE_MODULES=${APACHE_MODULES:-/usr/lib/apache2/modules}

die() { echo "error: $*" >&2; exit 2; }

# free_port N: first port >= N that nothing listens on (loopback).
free_port() {
	local p=$1
	while (: >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}

# apache_user: the user CGI programs run as.
apache_user() {
	if [ "$(id -u)" = 0 ]; then echo www-data; else id -un; fi
}

# as_apache_user CMD...: run a command as that user, so that nothing
# it creates ends up owned by root.
as_apache_user() {
	if [ "$(id -u)" = 0 ]; then runuser -u www-data -- "$@"; else "$@"; fi
}

# CLI_USER: as root, the SSH user of a host without suEXEC (see above); one
# per run, since several runs may share the machine.
CLI_USER=${CLI_USER:-strata-cli-$$}

# cli_user: the user the command line runs as.
cli_user() {
	if [ "$(id -u)" = 0 ]; then echo "$CLI_USER"; else id -un; fi
}

# add_cli_user: as root, creates CLI_USER (unless it exists): no home, its
# primary group "users" — not www-data, so that a file's group comes from
# the data directory or not at all — and www-data as a supplementary
# group, as the guide asks.
add_cli_user() {
	[ "$(id -u)" = 0 ] || return 0
	id -u "$CLI_USER" >/dev/null 2>&1 && return 0
	useradd --no-create-home --no-user-group --gid users --groups www-data \
		--shell /usr/sbin/nologin "$CLI_USER" || die "useradd $CLI_USER"
	CLI_USER_ADDED=1
}

# remove_cli_user: removes CLI_USER if add_cli_user created it.
remove_cli_user() {
	[ -n "${CLI_USER_ADDED:-}" ] || return 0
	userdel "$CLI_USER" 2>/dev/null
	CLI_USER_ADDED=
}

# as_cli_user CMD...: run a command as the command-line user (from /, which
# every user may enter).
as_cli_user() {
	if [ "$(id -u)" = 0 ]; then (cd / && runuser -u "$CLI_USER" -- "$@"); else "$@"; fi
}

# make_data_dir DIR: a data directory as the guide makes one. As root: the
# CLI user's, then, as that user, chgrp www-data and chmod 770 (hosts
# without suEXEC). Otherwise the current user's.
make_data_dir() {
	mkdir -p "$1" || die "mkdir $1"
	[ "$(id -u)" = 0 ] || return 0
	chown "$CLI_USER" "$1" &&
		as_cli_user sh -c 'chgrp www-data "$1" && chmod 770 "$1"' sh "$1" ||
		die "chgrp www-data $1 && chmod 770 $1 as $CLI_USER"
}

# strata_cli ARGS...: the deployed binary's command line (tenant, token,
# user, verify), run as the command-line user: as root, another user than
# the web server's (see above). Pass --data: the CGI copy has no
# strata.conf.
strata_cli() {
	as_cli_user "$WWW_CGI/cgi-bin/strata.cgi" "$@" </dev/null
}

# setup_apache BIN: lays out $WORK and writes the Apache config.
# Sets PORT_CGI PORT_FCGID DATA_CGI DATA_FCGID WWW_CGI WWW_FCGID, the users
# files USERS_CGI USERS_FCGID (named in the config, outside both document
# roots, not created: the test makes them with htpasswd), and TOKEN_CGI
# TOKEN_FCGID: a writer token of tenant "default" (tier unlimited) in each.
# Optional: MAX_BODY (bytes) is configured the way a user would, and
# COMPACT_AGE_FCGID (STRATA_COMPACT_AGE of the mod_fcgid processes).
setup_apache() {
	local bin=$1 ship=$REPO/cgi-bin f
	for f in cgi.htaccess fcgid.htaccess docroot.htaccess docroot-fcgid.htaccess; do
		[ -f "$ship/$f" ] || die "missing $ship/$f"
	done
	[ -x "$APACHE_BIN" ] || die "apache2 not installed ($APACHE_BIN)"
	[ -f "$APACHE_MODULES/mod_fcgid.so" ] || die "libapache2-mod-fcgid not installed"

	mkdir -p "$WORK"/{conf,logs,run} || die "mkdir $WORK"
	chmod 755 "$WORK"
	WWW_CGI=$WORK/www-cgi
	WWW_FCGID=$WORK/www-fcgid
	DATA_CGI=$WORK/data-cgi     # outside both document roots
	DATA_FCGID=$WORK/data-fcgid
	USERS_CGI=$WORK/users-cgi   # htpasswd files, outside both document roots
	USERS_FCGID=$WORK/users-fcgid
	mkdir -p "$WWW_CGI/cgi-bin" "$WWW_FCGID/cgi-bin"
	add_cli_user
	make_data_dir "$DATA_CGI"
	make_data_dir "$DATA_FCGID"

	# No shipped file may switch accounts off.
	for f in cgi.htaccess fcgid.htaccess docroot.htaccess docroot-fcgid.htaccess; do
		! grep -q 'STRATA_AUTH' "$ship/$f" || die "$ship/$f mentions STRATA_AUTH: accounts must stay on"
	done

	# mod_cgid: binary as strata.cgi; data dir and users file via SetEnv in
	# .htaccess (the users line ships commented out).
	install -m 755 "$bin" "$WWW_CGI/cgi-bin/strata.cgi"
	cp "$ship/docroot.htaccess" "$WWW_CGI/.htaccess"
	sed -e "s|^SetEnv STRATA_DATA .*|SetEnv STRATA_DATA $DATA_CGI|" \
		-e "s|^#SetEnv STRATA_USERS .*|SetEnv STRATA_USERS $USERS_CGI|" \
		"$ship/cgi.htaccess" >"$WWW_CGI/cgi-bin/.htaccess"
	grep -q "^SetEnv STRATA_DATA $DATA_CGI\$" "$WWW_CGI/cgi-bin/.htaccess" ||
		die "cgi.htaccess has no 'SetEnv STRATA_DATA' line to point at the test data"
	grep -q "^SetEnv STRATA_USERS $USERS_CGI\$" "$WWW_CGI/cgi-bin/.htaccess" ||
		die "cgi.htaccess has no '#SetEnv STRATA_USERS' line to point at the test users file"
	if [ -n "${MAX_BODY:-}" ]; then
		echo "SetEnv STRATA_MAX_BODY $MAX_BODY" >>"$WWW_CGI/cgi-bin/.htaccess"
	fi

	# mod_fcgid: binary as strata.fcgi; data dir and users file via
	# strata.conf next to it.
	install -m 755 "$bin" "$WWW_FCGID/cgi-bin/strata.fcgi"
	cp "$ship/docroot-fcgid.htaccess" "$WWW_FCGID/.htaccess"
	cp "$ship/fcgid.htaccess" "$WWW_FCGID/cgi-bin/.htaccess"
	{
		echo "STRATA_DATA=$DATA_FCGID"
		echo "STRATA_USERS=$USERS_FCGID"
		[ -n "${MAX_BODY:-}" ] && echo "STRATA_MAX_BODY=$MAX_BODY"
		[ -n "${COMPACT_AGE_FCGID:-}" ] && echo "STRATA_COMPACT_AGE=$COMPACT_AGE_FCGID"
	} >"$WWW_FCGID/cgi-bin/strata.conf"
	chmod 644 "$WWW_FCGID/cgi-bin/strata.conf"

	# Accounts: the tenant and a writer token in each data directory.
	local d dir tok
	for d in CGI FCGID; do
		dir=DATA_$d
		dir=${!dir}
		strata_cli tenant create default --tier unlimited --data "$dir" >"$WORK/tenant-$d.out" 2>&1 ||
			die "strata tenant create default --data $dir: $(cat "$WORK/tenant-$d.out")"
		tok=$(strata_cli token create --tenant default --role writer --name e2e-writer --data "$dir" 2>"$WORK/token-$d.err") ||
			die "strata token create --data $dir: $(cat "$WORK/token-$d.err")"
		[[ $tok == strata_* ]] || die "strata token create printed '$tok', not a token"
		printf -v "TOKEN_$d" '%s' "$tok"
	done
	export TOKEN_CGI TOKEN_FCGID

	PORT_CGI=$(free_port "${PORT_CGI:-8089}")
	PORT_FCGID=$(free_port $((PORT_CGI + 1)))

	cat >"$WORK/conf/ports.conf" <<-EOF
		Listen 127.0.0.1:$PORT_CGI
		Listen 127.0.0.1:$PORT_FCGID
	EOF

	local m mods="mpm_event authz_core authz_host mime env setenvif
		rewrite cgid fcgid filter deflate dir"
	{
		for m in $mods; do
			echo "LoadModule ${m}_module $APACHE_MODULES/mod_$m.so"
		done
		cat <<-EOF
			ServerName 127.0.0.1
			DefaultRuntimeDir $WORK/run
			PidFile $WORK/run/httpd.pid
			Mutex file:$WORK/run default
			ErrorLog $WORK/logs/error.log
			LogLevel warn
			LogFormat "%h %t \"%r\" %>s %O %Dus" timed
			CustomLog $WORK/logs/access.log timed
			TypesConfig /etc/mime.types
			Timeout 300
			KeepAlive On
			Include $WORK/conf/ports.conf
			ScriptSock $WORK/run/cgisock
			# What a host must set for big uploads under mod_fcgid (server
			# config only; the default 128 KiB refuses larger bodies).
			FcgidMaxRequestLen 1073741824
			FcgidIPCDir $WORK/run/fcgid
			FcgidProcessTableFile $WORK/run/fcgid_shm
			FcgidConnectTimeout 20
			FcgidIOTimeout 120
			# Pass answers on as the program writes them: the default
			# holds back 64 KiB, so event streams would arrive at the end.
			FcgidOutputBufferSize 0
			# As Debian's default deflate.conf.
			AddOutputFilterByType DEFLATE text/html text/plain text/xml text/css text/javascript
			AddOutputFilterByType DEFLATE application/javascript application/xml
			AccessFileName .htaccess
			<Directory />
			    Options FollowSymLinks
			    AllowOverride None
			    Require all denied
			</Directory>
			<FilesMatch "^\.ht">
			    Require all denied
			</FilesMatch>
		EOF
		if [ "$(id -u)" = 0 ]; then
			echo "User www-data"
			echo "Group www-data"
		fi
		local port root
		for pair in "$PORT_CGI $WWW_CGI" "$PORT_FCGID $WWW_FCGID"; do
			read -r port root <<<"$pair"
			cat <<-EOF
				<VirtualHost 127.0.0.1:$port>
				    DocumentRoot $root
				    <Directory $root>
				        Options FollowSymLinks
				        # What cgi-bin/README.md asks of the host:
				        AllowOverride FileInfo AuthConfig Options=ExecCGI,FollowSymLinks,SymLinksIfOwnerMatch
				        Require all granted
				    </Directory>
				</VirtualHost>
			EOF
		done
	} >"$WORK/conf/httpd.conf"
}

# start_apache: starts it and waits until both ports answer.
start_apache() {
	"$APACHE_BIN" -t -f "$WORK/conf/httpd.conf" >"$WORK/logs/configtest.log" 2>&1 || {
		cat "$WORK/logs/configtest.log" >&2
		die "apache config test failed"
	}
	"$APACHE_BIN" -f "$WORK/conf/httpd.conf" -k start || die "apache did not start"
	APACHE_STARTED=1
	local port
	for port in "$PORT_CGI" "$PORT_FCGID"; do
		for _ in $(seq 1 100); do
			curl -s -o /dev/null "http://127.0.0.1:$port/" && break
			sleep 0.1
		done
		curl -s -o /dev/null "http://127.0.0.1:$port/" || {
			dump_apache_log 60
			die "apache does not answer on port $port"
		}
	done
}

# stop_apache: stops it (and with it the cgid daemon and fcgid processes).
stop_apache() {
	[ -n "${APACHE_STARTED:-}" ] || return 0
	APACHE_STARTED=
	stop_httpd "$WORK/conf/httpd.conf" "$WORK/run/httpd.pid"
}

# stop_httpd CONF PIDFILE: stops the Apache started with CONF and waits
# (at most 10 s) for its process to go.
stop_httpd() {
	local pid
	pid=$(cat "$2" 2>/dev/null)
	"$APACHE_BIN" -f "$1" -k stop 2>/dev/null
	if [ -n "$pid" ]; then
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
}

dump_apache_log() {
	echo "# ---- apache error log ($WORK/logs/error.log) ----"
	sed 's/^/# /' "$WORK/logs/error.log" 2>/dev/null | tail -n "${1:-60}"
	echo "# ----"
}
