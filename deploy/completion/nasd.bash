# bash completion for nas-master, nas-worker, nasctl and nas-train
# (installed once under each name in share/bash-completion/completions).
#
# The options come from the program's own --help, read once per shell and
# program, so the completion cannot drift from the binary.  Values: files
# for paths, the log levels for --log-level, *.yaml for nas-master's
# campaign, nasctl's subcommands in the first place.

_nasd_help_words() {
    local prog=$1 var
    var="_nasd_help_${prog//[^a-zA-Z0-9]/_}"
    if [ -z "${!var-}" ]; then
        printf -v "$var" '%s' "$("$prog" --help 2>/dev/null)"
    fi
    printf '%s\n' "${!var}"
}

_nasd_complete() {
    local cur prev prog help
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    prog=${COMP_WORDS[0]}
    help=$(_nasd_help_words "$prog")

    case "$prev" in
        --log-level)
            mapfile -t COMPREPLY < <(compgen -W "debug info warn error off" -- "$cur")
            return ;;
        --db|--key|--master-key|--table|--campaign)
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return ;;
        --authorized|--data-dir)
            mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            return ;;
    esac
    # The first word of nasctl is a subcommand: the indented words of its
    # --help that begin a line.
    if [ "${prog##*/}" = nasctl ] && [ "$COMP_CWORD" = 1 ]; then
        local cmds
        cmds=$(printf '%s\n' "$help" | sed -n 's/^  \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p')
        mapfile -t COMPREPLY < <(compgen -W "$cmds" -- "$cur")
        return
    fi
    if [[ $cur == -* ]]; then
        local opts
        opts=$(printf '%s\n' "$help" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
        return
    fi
    if [ "${prog##*/}" = nas-master ]; then
        mapfile -t COMPREPLY < <(compgen -f -X '!*.@(yaml|yml)' -- "$cur"; compgen -d -- "$cur")
        return
    fi
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}

complete -F _nasd_complete nas-master nas-worker nasctl nas-train
