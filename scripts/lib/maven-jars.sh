# Sourced by scripts/kafka.sh and scripts/connect.sh: the jars of a pom, fetched once.
#
#   fetch_jars POM HOME LIBS WHAT JAR...
#
# Downloads the runtime dependencies of POM from Maven Central into LIBS (under
# HOME, the cache) unless LIBS holds a completion marker for this very pom; each
# JAR named must be among them. WHAT says what is fetched, in messages. Concurrent
# first starts on one cache are serialised on a lock (fd 8, closed before
# returning so a server started afterwards does not inherit it). The caller
# defines `log` and `die`.

fetch_jars() {
    local pom=$1 home=$2 libs=$3 what=$4
    shift 4
    local marker="$libs/.complete" want jar tmp
    want=$(sha256sum "$pom" | cut -d' ' -f1)
    if [[ -f $marker && $(cat "$marker") == "$want" ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        die "Maven is required to fetch the $what jars (not cached in $libs yet): install maven"
    mkdir -p "$home"
    exec 8>"$home/.lock"
    if command -v flock >/dev/null 2>&1; then
        flock 8
    fi
    if [[ -f $marker && $(cat "$marker") == "$want" ]]; then
        exec 8>&-
        return 0
    fi
    log "fetching $what jars from Maven Central into $libs (one time) ..."
    tmp=$(mktemp -d "$home/libs.tmp.XXXXXX")
    # (Maven 3.8 prints stray ANSI resets even with -q -B; strip them)
    if ! mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 |
        sed -e $'s/\e\\[[0-9;]*m//g' -e '/^$/d' >&2; then
        rm -rf "$tmp"
        exec 8>&-
        die "mvn failed to fetch the $what jars (see output above)"
    fi
    for jar in "$@"; do
        if [[ ! -f $tmp/$jar ]]; then
            rm -rf "$tmp"
            exec 8>&-
            die "mvn finished but $jar is missing"
        fi
    done
    echo "$want" >"$tmp/.complete"
    rm -rf "$libs"
    mv "$tmp" "$libs"
    exec 8>&-
}
