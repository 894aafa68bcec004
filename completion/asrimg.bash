# bash completion for asrimg: commands, each command's options (as `asrimg COMMAND --help` lists
# them; tests/completion_test.sh keeps the two in step), and paths: block devices under /dev and
# files where a disk goes, files where an image goes.
# Installed as share/bash-completion/completions/asrimg; from a source tree: source it.

_asrimg_commands="layout backup bench restore mount umount info verify rescue store export import help version"
_asrimg_rescue="make update images plan run"
_asrimg_store="init list prune gc verify"

# The options of a command, -h/--help included.
_asrimg_options() {
    case $1 in
    layout) echo "--volumes --key-file --unlock --json --extents --help -h" ;;
    backup) echo "-o --output --output-dir --volumes --key-file --unlock --level --threads --split --force --ignore-read-errors --freeze --json --avg-chunk --host --store-key --no-hints --no-patches --endpoint --help -h" ;;
    bench) echo "--volumes --key-file --unlock --level --threads --json --help -h" ;;
    restore) echo "--to --yes --new-ids --grow --verify --discard --zero-unused --keep-going --boot-entries --threads --json --help -h" ;;
    mount) echo "--allow-other --cache -d --daemon --help -h" ;;
    umount) echo "--help -h" ;;
    info) echo "--json --help -h" ;;
    verify) echo "--against --new-ids --grow --key-file --unlock --json --help -h" ;;
    "rescue make") echo "--size --data-fs --label --system-root --kernel-args --yes --json --help -h" ;;
    "rescue update") echo "--system-root --kernel-args --json --help -h" ;;
    "rescue images") echo "--json --help -h" ;;
    "rescue plan") echo "--drive --target --json --help -h" ;;
    "rescue run") echo "--images --image --drive --target --yes --next-file --cmdline-file --json --help -h" ;;
    rescue) echo "--help -h" ;;
    "store init") echo "--store-key --endpoint --json --help -h" ;;
    "store list") echo "--host --store-key --endpoint --json --help -h" ;;
    "store prune") echo "--keep-last --keep-daily --keep-weekly --keep-monthly --host --dry-run --store-key --endpoint --json --help -h" ;;
    "store gc") echo "--store-key --endpoint --json --help -h" ;;
    "store verify") echo "--read-data --store-key --endpoint --json --help -h" ;;
    store) echo "--help -h" ;;
    export | import) echo "-o --output --force --host --store-key --endpoint --json --help -h" ;;
    esac
}

# Paths for $1: files and directories; with $2 = disk, block devices too, and of /dev nothing else.
_asrimg_paths() {
    local cur=$1 kind=${2-} f
    local IFS=$'\n'
    if [[ $kind == disk && ( -z $cur || $cur == /dev/* ) ]]; then
        for f in $(compgen -f -- "${cur:-/dev/}"); do
            [[ -b $f || ( -d $f && $f == /dev/* ) ]] && COMPREPLY+=("$f")
        done
        [[ -n $cur ]] && return
    fi
    for f in $(compgen -f -- "$cur"); do
        [[ -b $f || -c $f ]] || COMPREPLY+=("$f")
    done
}

_asrimg() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()
    # "--to=/dev/s" comes as "--to" "=" "/dev/s" (= breaks words), or "--to" "=" while at the '='.
    if [[ $cur == = ]]; then
        cur=""
    elif [[ $prev == = ]] && ((COMP_CWORD >= 2)); then
        prev=${COMP_WORDS[COMP_CWORD - 2]}
    fi
    if ((COMP_CWORD == 1)); then
        COMPREPLY=($(compgen -W "$_asrimg_commands --help --version" -- "$cur"))
        return
    fi
    local cmd=${COMP_WORDS[1]}
    if [[ $cmd == help ]]; then
        ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W "${_asrimg_commands% help version}" -- "$cur"))
        ((COMP_CWORD == 3)) && [[ ${COMP_WORDS[2]} == rescue ]] && COMPREPLY=($(compgen -W "$_asrimg_rescue" -- "$cur"))
        ((COMP_CWORD == 3)) && [[ ${COMP_WORDS[2]} == store ]] && COMPREPLY=($(compgen -W "$_asrimg_store" -- "$cur"))
        return
    fi
    if [[ $cmd == rescue || $cmd == store ]]; then
        local subs=$_asrimg_rescue
        [[ $cmd == store ]] && subs=$_asrimg_store
        if ((COMP_CWORD == 2)); then
            [[ $cur == -* ]] || COMPREPLY=($(compgen -W "$subs" -- "$cur"))
            [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$(_asrimg_options "$cmd")" -- "$cur"))
            return
        fi
        cmd="$cmd ${COMP_WORDS[2]}"
    fi
    compopt -o filenames 2>/dev/null
    case $prev in
    --volumes)
        COMPREPLY=($(compgen -W "critical all" -- "$cur"))
        compopt +o filenames 2>/dev/null
        return ;;
    --level)
        COMPREPLY=($(compgen -W "$(echo {0..19})" -- "$cur"))
        return ;;
    --split)
        COMPREPLY=($(compgen -W "fat32 1G 4G" -- "$cur"))
        return ;;
    --cache)
        COMPREPLY=($(compgen -W "64M 256M 1G" -- "$cur"))
        return ;;
    --data-fs)
        COMPREPLY=($(compgen -W "exfat ext4 fat32" -- "$cur"))
        compopt +o filenames 2>/dev/null
        return ;;
    --size)
        COMPREPLY=($(compgen -W "1G 4G 8G 16G" -- "$cur"))
        return ;;
    --threads | --avg-chunk | --label | --kernel-args | --host | --endpoint | --keep-last | --keep-daily | --keep-weekly | --keep-monthly)
        return ;;
    --system-root)
        _asrimg_paths "$cur" file
        return ;;
    -o | --output | --key-file | --store-key)
        _asrimg_paths "$cur" file
        return ;;
    --output-dir)
        COMPREPLY=($(compgen -d -- "$cur"))
        return ;;
    --to | --against | --target | --drive)
        _asrimg_paths "$cur" disk
        return ;;
    --images)
        COMPREPLY=($(compgen -d -- "$cur"))
        return ;;
    --image | --next-file | --cmdline-file)
        _asrimg_paths "$cur" file
        return ;;
    esac
    if [[ $cur == -* ]]; then
        compopt +o filenames 2>/dev/null
        COMPREPLY=($(compgen -W "$(_asrimg_options "$cmd")" -- "$cur"))
        return
    fi
    # A word: disks for the commands that read them, and for verify after --against; else images.
    local w after_against=
    for w in "${COMP_WORDS[@]:2:COMP_CWORD-2}"; do
        [[ $w == --against ]] && after_against=1
    done
    case $cmd in
    layout | backup | bench) _asrimg_paths "$cur" disk ;;
    verify) _asrimg_paths "$cur" ${after_against:+disk} ;;
    restore | info | "rescue plan") _asrimg_paths "$cur" file ;;
    mount) _asrimg_paths "$cur" file ;; # the image, then the directory
    umount) COMPREPLY=($(compgen -d -- "$cur")) ;;
    "rescue make" | "rescue update") _asrimg_paths "$cur" disk ;;
    "rescue images") COMPREPLY=($(compgen -d -- "$cur")) ;;
    store\ * | export | import) _asrimg_paths "$cur" file ;; # stores are directories, images files
    esac
}

complete -F _asrimg asrimg
