#!/usr/bin/env bash
# Train-step throughput of models/unet.lua at batch 64, fp32: the ddpmc
# executable vs PyTorch eager CPU (diffusers' UNet2DModel, same config, same
# step), same thread count, in one run. Also: peak RSS of both, the FMA peak
# of this machine (bench/fma_peak.c), the GFLOP/s ddpmc achieves and its
# fraction of that peak, and the compile time of models/unet.lua.
#
#   bench/run.sh [--threads N] [--steps S] [--warmup W] [--batch B]
#                [--no-ddpmc] [--no-torch] [--no-compile]
#
# Defaults: N = nproc, S = 10 timed steps, W = 2 untimed steps first, B = 64.
# Environment: DDPMC (default build/compiler/ddpmc), PYTHON (default
# /opt/ddpmc-venv/bin/python), OUT (default bench/out), DATA (default
# fashion-mnist), TIMEOUT (seconds per phase, default 1800), CC (default cc).
# Everything it writes goes under $OUT; the table is also saved as
# $OUT/results.txt and the numbers as $OUT/results.json. See bench/README.md.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

THREADS=$(nproc)
STEPS=10
WARMUP=2
BATCH=64
DO_DDPMC=1
DO_TORCH=1
DO_COMPILE=1
while [ $# -gt 0 ]; do
	case "$1" in
	--threads) THREADS=$2; shift 2 ;;
	--steps) STEPS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--batch) BATCH=$2; shift 2 ;;
	--no-ddpmc) DO_DDPMC=0; shift ;;
	--no-torch) DO_TORCH=0; shift ;;
	--no-compile) DO_COMPILE=0; shift ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done

DDPMC=${DDPMC:-build/compiler/ddpmc}
PYTHON=${PYTHON:-/opt/ddpmc-venv/bin/python}
OUT=${OUT:-bench/out}
DATA=${DATA:-fashion-mnist}
TIMEOUT=${TIMEOUT:-1800}
CC=${CC:-cc}
MODEL=models/unet.lua
EXE=$OUT/unet
TIMEV=/usr/bin/time

mkdir -p "$OUT" || exit 1
LOG=$OUT/run.log
: > "$LOG"
note() { echo "[run.sh] $*" | tee -a "$LOG" >&2; }

if [ ! -x "$TIMEV" ]; then
	note "$TIMEV not found (Debian: apt-get install time); peak RSS and elapsed times need it"
	exit 1
fi
# Runs "$@" under /usr/bin/time -v (report in $1.time), stdout to $1.out,
# stderr to $1.err, with a timeout. Returns the command's status.
timed() {
	local base=$1; shift
	timeout "$TIMEOUT" "$TIMEV" -v -o "$base.time" "$@" > "$base.out" 2> "$base.err"
	local rc=$?
	echo "$rc" > "$base.rc"
	return $rc
}

T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
note "threads $THREADS, batch $BATCH, $WARMUP warmup + $STEPS timed steps, data $DATA"

# 1. FMA peak -----------------------------------------------------------------
rm -f "$OUT/fma_peak" "$OUT/fma_peak.json"
if "$CC" -O3 -march=native -pthread -o "$OUT/fma_peak" bench/fma_peak.c 2>> "$LOG"; then
	note "measuring the FMA peak (1..$THREADS threads)"
	"$OUT/fma_peak" --threads "$THREADS" > "$OUT/fma_peak.json" 2>> "$LOG" ||
		note "fma_peak failed"
else
	note "building bench/fma_peak.c failed (see $LOG)"
fi

# 2. Compile the model, FLOPs per train step ----------------------------------
rm -f "$OUT/inspect.json" "$OUT"/compile.* "$OUT"/ddpmc_train.*
DDPMC_STATUS=ok
if [ "$DO_DDPMC" = 1 ]; then
	if [ ! -x "$DDPMC" ]; then
		DDPMC_STATUS="compiler $DDPMC not found (build it first: sh tools/build.sh or cmake)"
	else
		"$DDPMC" inspect "$MODEL" --set batch="$BATCH" --json > "$OUT/inspect.json" 2>> "$LOG" ||
			{ note "ddpmc inspect failed"; rm -f "$OUT/inspect.json"; }
		if [ "$DO_COMPILE" = 1 ]; then
			rm -f "$EXE"
			note "compiling $MODEL (batch $BATCH)"
			if ! timed "$OUT/compile" "$DDPMC" compile "$MODEL" --set batch="$BATCH" -o "$EXE"; then
				DDPMC_STATUS="compile failed (rc $(cat "$OUT/compile.rc")): $(tail -n 3 "$OUT/compile.err" | grep -v '^\s' | tr '\n' ' ')"
			fi
		fi
		if [ "$DDPMC_STATUS" = ok ] && [ ! -x "$EXE" ]; then
			DDPMC_STATUS="no executable at $EXE"
		fi
	fi
else
	DDPMC_STATUS="skipped (--no-ddpmc)"
fi

# 3. ddpmc train ----------------------------------------------------------------
if [ "$DDPMC_STATUS" = ok ]; then
	rm -rf "$OUT/run"
	note "ddpmc: $EXE train, $((WARMUP + STEPS)) steps"
	if ! timed "$OUT/ddpmc_train" "$EXE" train --steps $((WARMUP + STEPS)) --threads "$THREADS" \
		--data "$DATA" --out "$OUT/run"; then
		DDPMC_STATUS="train failed (rc $(cat "$OUT/ddpmc_train.rc")): $(tail -n 3 "$OUT/ddpmc_train.err" | grep -v '^\s' | tr '\n' ' ')"
	fi
fi
[ "$DDPMC_STATUS" = ok ] || note "ddpmc side: $DDPMC_STATUS; the PyTorch side still runs"

# 4. PyTorch --------------------------------------------------------------------
rm -f "$OUT"/torch_train.*
TORCH_STATUS=ok
if [ "$DO_TORCH" = 1 ]; then
	EXTRA=
	# Without ddpmc's FLOP count, count torch's (convolutions and matmuls).
	[ -s "$OUT/inspect.json" ] || EXTRA=--count-flops
	TDATA=$DATA
	[ "$TDATA" = fashion-mnist ] || [ "$TDATA" = random ] || TDATA=auto
	note "torch: bench/torch_train.py, $((WARMUP + STEPS)) steps"
	if ! OMP_NUM_THREADS=$THREADS timed "$OUT/torch_train" "$PYTHON" bench/torch_train.py \
		--batch "$BATCH" --threads "$THREADS" --steps "$STEPS" --warmup-steps "$WARMUP" \
		--data "$TDATA" --verbose $EXTRA; then
		TORCH_STATUS="failed (rc $(cat "$OUT/torch_train.rc")): $(grep -v '^\s' "$OUT/torch_train.err" | tail -n 2 | tr '\n' ' ')"
	fi
else
	TORCH_STATUS="skipped (--no-torch)"
fi
[ "$TORCH_STATUS" = ok ] || note "torch side: $TORCH_STATUS"

# 5. Report ---------------------------------------------------------------------
TOTAL_S=$(( $(date +%s) - T_START ))
LOAD_END=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
PYREPORT=$PYTHON
[ -x "$PYREPORT" ] || PYREPORT=python3
OUT="$OUT" BATCH="$BATCH" THREADS="$THREADS" STEPS="$STEPS" WARMUP="$WARMUP" \
DDPMC_STATUS="$DDPMC_STATUS" TORCH_STATUS="$TORCH_STATUS" TOTAL_S="$TOTAL_S" \
LOAD_START="$LOAD_START" LOAD_END="$LOAD_END" \
	"$PYREPORT" - <<'EOF' | tee "$OUT/results.txt"
import json, os, re, statistics

E = os.environ
out, batch, threads = E["OUT"], int(E["BATCH"]), int(E["THREADS"])
warmup = int(E["WARMUP"])

def read(path):
    try:
        with open(os.path.join(out, path)) as f:
            return f.read()
    except OSError:
        return None

def jload(path):
    s = read(path)
    if not s:
        return None
    try:
        return json.loads(s.strip().splitlines()[-1] if path.endswith(".out") else s)
    except (ValueError, IndexError):
        return None

def timev(base):
    """(elapsed s, peak RSS MB) from a /usr/bin/time -v report."""
    s = read(base + ".time") or ""
    el = rss = None
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", s)
    if m:
        el = 0.0
        for part in m.group(1).split(":"):
            el = el * 60 + float(part)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", s)
    if m:
        rss = int(m.group(1)) / 1024
    return el, rss

res = {"batch": batch, "threads": threads, "steps": int(E["STEPS"]), "warmup_steps": warmup}

# FLOPs per train step.
insp = jload("inspect.json")
flops = flops_src = None
if insp:
    for e in insp.get("entries", []):
        if e.get("name") == "train_step":
            flops, flops_src = e.get("flops"), "ddpmc inspect"

# FMA peak.
fma = jload("fma_peak.json")
peak = fma.get("peak_gflops") if fma else None

# ddpmc.
d = {"status": E["DDPMC_STATUS"]}
c_el, c_rss = timev("compile")
if c_el is not None and (read("compile.rc") or "").strip() == "0":
    d["compile_s"], d["compile_peak_rss_mb"] = c_el, c_rss
if E["DDPMC_STATUS"] == "ok":
    el, rss = timev("ddpmc_train")
    d["elapsed_s"], d["peak_rss_mb"] = el, rss
    text = (read("ddpmc_train.out") or "") + "\n" + (read("ddpmc_train.err") or "")
    rates = []
    for line in text.splitlines():
        m = re.search(r"\bstep\s+(\d+)\b.*?\bimg/s\s*[:=]?\s*([0-9.eE+-]+)", line)
        if m:
            try:
                rates.append((int(m.group(1)), float(m.group(2))))
            except ValueError:
                pass
    steady = [r for s, r in rates if s > warmup] or [r for s, r in rates[1:]] or [r for s, r in rates]
    if steady:
        d["images_per_s_median"] = statistics.median(steady)
        d["images_per_s_mean_of_lines"] = statistics.mean(steady)
        d["images_per_s_lines"] = len(steady)
    if el:
        d["images_per_s_wall"] = batch * (warmup + res["steps"]) / el
    d["images_per_s"] = d.get("images_per_s_median", d.get("images_per_s_wall"))
    d["images_per_s_source"] = ("median of the img/s it printed after step %d" % warmup
                                if "images_per_s_median" in d else
                                "steps x batch / elapsed (no img/s lines found; includes startup)")
res["ddpmc"] = d

# torch.
t = {"status": E["TORCH_STATUS"]}
if E["TORCH_STATUS"] == "ok":
    j = jload("torch_train.out") or {}
    el, rss = timev("torch_train")
    t.update(j)
    t["elapsed_s"], t["peak_rss_mb"] = el, rss  # /usr/bin/time's, over the whole process
    t["peak_rss_mb_self"] = j.get("peak_rss_mb")
    if j.get("step_s_median"):
        t["images_per_s_median"] = batch / j["step_s_median"]
    if el:
        t["images_per_s_wall"] = batch * (warmup + res["steps"]) / el
    if flops is None and j.get("flops_per_step_counted"):
        flops, flops_src = j["flops_per_step_counted"], "torch FlopCounterMode (convs and matmuls only)"
res["torch"] = t

res["flops_per_step"], res["flops_source"] = flops, flops_src
res["fma_peak_gflops"] = peak
if fma:
    res["fma"] = fma
for side in (d, t):
    for key in ("images_per_s", "images_per_s_median"):
        if side.get(key) and flops:
            g = flops * side[key] / batch / 1e9
            side["gflops" if key == "images_per_s" else "gflops_median"] = g
            if peak:
                side["fraction_of_peak" if key == "images_per_s" else "fraction_of_peak_median"] = g / peak
if d.get("images_per_s") and t.get("images_per_s_median"):
    res["ratio_ddpmc_over_torch"] = d["images_per_s"] / t["images_per_s_median"]
res["total_s"] = int(E["TOTAL_S"])
res["loadavg_1min_start"] = float(E["LOAD_START"])
res["loadavg_1min_end"] = float(E["LOAD_END"])
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(res, f, indent=1)

def f(v, fmt="%.1f"):
    return "-" if v is None else fmt % v

def pct(v):
    return "-" if v is None else "%.1f%%" % (100 * v)

rows = [
    ("images/s (median step)", f(d.get("images_per_s")), f(t.get("images_per_s_median"))),
    ("images/s (mean of timed steps)", f(d.get("images_per_s_mean_of_lines")), f(t.get("images_per_s"))),
    ("images/s (whole process, wall)", f(d.get("images_per_s_wall")), f(t.get("images_per_s_wall"))),
    ("peak RSS (MB)", f(d.get("peak_rss_mb"), "%.0f"), f(t.get("peak_rss_mb"), "%.0f")),
    ("achieved GFLOP/s", f(d.get("gflops")), f(t.get("gflops_median"))),
    ("fraction of FMA peak", pct(d.get("fraction_of_peak")), pct(t.get("fraction_of_peak_median"))),
    ("process elapsed (s)", f(d.get("elapsed_s")), f(t.get("elapsed_s"))),
]
w0 = max(len(r[0]) for r in rows)
print()
print("train step, models/unet.lua, batch %d, fp32, %d threads, %d warmup + %d timed steps"
      % (batch, threads, warmup, res["steps"]))
print("%-*s  %12s  %12s" % (w0, "", "ddpmc", "torch eager"))
for r in rows:
    print("%-*s  %12s  %12s" % (w0, *r))
print()
ratio = res.get("ratio_ddpmc_over_torch")
print("ratio ddpmc / torch (images/s): %s" % (f(ratio, "%.2fx")))
if flops:
    print("FLOPs per train step: %.4g GFLOP (%s)" % (flops / 1e9, flops_src))
if fma:
    per = ", ".join("%d thr %.0f" % (r["threads"], r["gflops"]) for r in fma.get("results", []))
    print("FMA peak (fp32, %s): %.0f GFLOP/s at %d threads [%s]; 1 thread x %d = %.0f"
          % (fma.get("isa"), peak, fma.get("threads_max", 0), per, fma.get("threads_max", 0),
             fma.get("peak_gflops_1thread_x_n", 0)))
else:
    print("FMA peak: not measured (see %s/run.log)" % out)
if "compile_s" in d:
    print("compile time of models/unet.lua: %.2f s (peak RSS %.0f MB)"
          % (d["compile_s"], d.get("compile_peak_rss_mb") or 0))
else:
    print("compile time of models/unet.lua: -")
if d.get("images_per_s_source"):
    print("ddpmc images/s: %s" % d["images_per_s_source"])
if d["status"] != "ok":
    print("ddpmc: NOT MEASURED: %s" % d["status"])
if t["status"] != "ok":
    print("torch: NOT MEASURED: %s" % t["status"])
elif t.get("parameters_match_ddpmc") is False:
    print("torch: WARNING: %s parameters, not ddpmc's 6,469,889" % t.get("parameters"))
if fma and fma.get("peak_gflops_1thread_x_n") and peak < 0.8 * fma["peak_gflops_1thread_x_n"]:
    print("WARNING: the FMA rate did not scale with threads (other load, SMT siblings or a shared "
          "power budget); fractions are of the measured %d-thread rate" % fma.get("threads_max", 0))
if res["loadavg_1min_start"] > 0.5:
    print("WARNING: 1-minute load average was %.2f before the run: other work was running, "
          "so the numbers are noisy" % res["loadavg_1min_start"])
print("whole run: %d s; details in %s/results.json, logs in %s/" % (res["total_s"], out, out))
EOF
