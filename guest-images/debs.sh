# Debian package helpers shared by guest-images/build and build-rootdisk
# (sourced, not run). The sourcing script sets CACHE (where .debs are kept)
# and defines log and die.
#
#   apt_query PKG...        CAND[PKG]=candidate version, DEPS[PKG]=its Depends
#   apt_update_once         apt-get update, at most once per run and as root
#   fetch_deb NAME VERSION  prints the path of NAME_VERSION_*.deb in $CACHE,
#                           downloading it unless cached
apt_updated=0
apt_update_once() {
    ((apt_updated)) && return 1
    apt_updated=1
    [[ $(id -u) == 0 ]] || { log "not root: cannot run apt-get update"; return 1; }
    log "running apt-get update"
    apt-get update >&2 || { log "apt-get update failed"; return 1; }
}

# One apt-cache call (each costs ~0.5 s here) for the candidate versions of
# the packages we need and the dependency of the metapackage.
declare -A CAND=() DEPS=()
apt_query() {
    local p v d
    while IFS=$'\t' read -r p v d; do
        CAND[$p]="$v"; DEPS[$p]="$d"
    done < <(apt-cache show --no-all-versions "$@" 2>/dev/null |
        awk -F': ' '/^Package: /{p=$2} /^Version: /{v=$2} /^Depends: /{d=$2}
                    /^$/ {if (p != "") print p "\t" v "\t" d; p = v = d = ""}
                    END {if (p != "") print p "\t" v "\t" d}' || true)
}

# fetch_deb NAME VERSION -> prints the path of the .deb in $CACHE.
# Reuses a cached .deb of that exact version; otherwise apt-get download.
# On failure (or with no VERSION) prints what failed and falls back to the
# newest cached .deb of that package name, if there is one.
fetch_deb() {
    local name="$1" ver="$2" deb errf rc
    if [[ -n $ver ]]; then
        # apt-get download names files NAME_VERSION_ARCH.deb with ':' as %3a
        deb="$(ls -1 "$CACHE/${name}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)"
        if [[ -n $deb ]]; then echo "$deb"; return 0; fi
        errf="$(mktemp)"
        log "downloading $name=$ver"
        rc=0
        (cd "$CACHE" && apt-get download -o APT::Sandbox::User=root "$name=$ver") >"$errf" 2>&1 || rc=$?
        if ((rc == 0)); then
            rm -f "$errf"
            deb="$(ls -1 "$CACHE/${name}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)"
            [[ -n $deb ]] && { echo "$deb"; return 0; }
            log "FAILED: apt-get download $name=$ver exited 0 but left no ${name}_${ver}_*.deb in $CACHE"
        else
            log "FAILED: (cd $CACHE && apt-get download $name=$ver) exited with status $rc; its output:"
            sed 's/^/    /' "$errf" >&2
            rm -f "$errf"
        fi
    else
        log "FAILED: apt-cache knows no installable version of '$name'"
        log "    (apt-cache show --no-all-versions $name found nothing, even after apt-get update if root)."
        [[ $name == linux-image-* ]] && log "    Set GUEST_KERNEL_DEB=/path/to/linux-image-*.deb to use a local package."
    fi
    deb="$(ls -1t "$CACHE/${name}_"*.deb 2>/dev/null | head -n1 || true)"
    if [[ -n $deb ]]; then
        log "falling back to the cached $(basename "$deb")"
        echo "$deb"
        return 0
    fi
    return 1
}
