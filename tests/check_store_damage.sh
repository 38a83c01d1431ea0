#!/bin/sh
# tests/check_store_damage.sh POLEGATE FIXTURE: `polegate store check` on copies of a
# real store, each with one byte of an LMDB page header flipped. LMDB follows page
# pointers it does not check, and these flips once crashed the check (SIGSEGV, an
# assertion): each must now end in "DAMAGED" and exit 1, never in a signal, with the
# write-ahead log beside it still checked.
set -u
polegate=$1 fixture=$2
# Under AddressSanitizer the crash is the point: let it be a signal, as it is without.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0:handle_sigbus=0:handle_abort=0"
export ASAN_OPTIONS
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$polegate" translate --from atx --to json --state "$dir/store" "$fixture" >/dev/null || exit 1
"$polegate" store check "$dir/store" >/dev/null || { echo "the undamaged store fails"; exit 1; }
fail=0
for spec in 14:16 12:16 2:16 14:20 5:10; do
    page=${spec%:*} off=${spec#*:}
    rm -rf "$dir/copy" && mkdir "$dir/copy" "$dir/copy/wal" && cp "$dir/store/data.mdb" "$dir/copy/"
    pos=$((page * 4096 + off))
    byte=$(od -An -tu1 -j "$pos" -N1 "$dir/copy/data.mdb" | tr -d ' ')
    printf "$(printf '\\%03o' $((byte ^ 255)))" |
        dd of="$dir/copy/data.mdb" bs=1 seek="$pos" conv=notrunc status=none
    out=$("$polegate" store check "$dir/copy" 2>/dev/null)
    rc=$?
    # the write-ahead log (what a recovery starts from) is still checked and reported
    if [ "$rc" -ne 1 ] || ! printf '%s' "$out" | grep -q DAMAGED ||
        ! printf '%s' "$out" | grep -q "/wal: "; then
        echo "page $page byte $off flipped: exit $rc: $out"
        fail=1
    fi
done
[ "$fail" -eq 0 ] && echo "store check: 5 damaged copies, each DAMAGED, exit 1"
exit "$fail"
