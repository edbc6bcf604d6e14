#!/usr/bin/env bash
# One 3x3 convolution, ddpmc against PyTorch, one thread, in turns: R
# rounds of build/bench/conv_bench (ddpmc's kernels, best of 5 each, summed
# per part) then bench/torch_conv.py (best of 5 per part), the forward
# convolution, the input gradient and the weight gradient apart. Prints
# each round's milliseconds and, per part, the median over the rounds of
# torch / ddpmc (above 1: ddpmc is faster).
#
#   bench/conv_vs_torch.sh [--rounds R] [--cpu NAME] [--winograd 2x2|4x4] [N C O H]
#
# Defaults: R = 3, this host's CPU, ddpmc's direct kernels (conv_bench
# without --winograd), 64 128 128 28 (the CPU schedule issue's example).
# A part's kernels are those after the previous output's store up to its
# own: copies the gradients share with the forward (the input's padded
# channels-last copy) count in the forward's part.
# Environment: PYTHON (default /opt/ddpmc-venv/bin/python), CONV_BENCH
# (default build/bench/conv_bench).
set -eu
cd "$(dirname "$0")/.."
ROUNDS=3
FLAGS=()
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--cpu|--winograd) FLAGS+=("$1" "$2"); shift 2 ;;
	-h|--help) sed -n '2,18p' "$0"; exit 0 ;;
	*) break ;;
	esac
done
DIMS=("$@")
[ ${#DIMS[@]} -eq 0 ] && DIMS=(64 128 128 28)
[ ${#DIMS[@]} -eq 4 ] || { echo "conv_vs_torch: expected N C O H, got: ${DIMS[*]}" >&2; exit 2; }
PYTHON=${PYTHON:-/opt/ddpmc-venv/bin/python}
CONV_BENCH=${CONV_BENCH:-build/bench/conv_bench}
[ -x "$CONV_BENCH" ] || { echo "conv_vs_torch: $CONV_BENCH not built (sh tools/build.sh)" >&2; exit 1; }

echo "conv 3x3 ${DIMS[*]} (N C O H), one thread, ddpmc ${FLAGS[*]:-(direct)} against PyTorch"
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT
for r in $(seq 1 "$ROUNDS"); do
	ours=$("$CONV_BENCH" "${FLAGS[@]}" "${DIMS[@]}")
	theirs=$(OMP_NUM_THREADS=1 "$PYTHON" bench/torch_conv.py --threads 1 "${DIMS[@]}")
	for part in "y:forward" "gx:input gradient" "gw:weight gradient"; do
		out=${part%%:*} name=${part#*:}
		d=$(printf '%s\n' "$ours" | awk -v o="$out" '$1 == "part:" && $4 == o { print $5 }')
		t=$(printf '%s\n' "$theirs" | awk -v n="torch $name" 'index($0, n) == 1 { print $NF }')
		printf 'round %d: %-16s ddpmc %8s ms, torch %8s ms\n' "$r" "$name" "$d" "$t"
		printf '%s\t%s\t%s\n' "$name" "$d" "$t" >>"$RESULTS"
	done
done
awk -F'\t' '
	{ n[$1]++; ratio[$1, n[$1]] = $3 / $2; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
	END {
		for (i = 1; i <= k; i++) {
			p = order[i]; m = n[p]
			for (a = 1; a <= m; a++) v[a] = ratio[p, a]
			for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (v[b] < v[a]) { t = v[a]; v[a] = v[b]; v[b] = t }
			printf "median torch / ddpmc, %s: %.2fx (range %.2f-%.2f)\n", p, (m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2), v[1], v[m]
		}
	}' "$RESULTS"
