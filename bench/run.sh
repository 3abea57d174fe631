#!/usr/bin/env bash
# Runs the whole benchmark suite once, then the missed rows' benchmarks again under -prof stack (about 5 minutes
# on 2 cores), and writes bench/RESULTS.md and
# bench/results.json. Measure on a quiet machine, holding the shared Maven lock for the whole run:
#     flock /tmp/iommu4j-mvn.lock bench/run.sh
# (the script calls mvn itself and so must not take the lock again). Options: JMH_ARGS adds JMH options;
# BENCH_INCLUDE narrows the benchmarks (a regex); MEMORY_MIB is what the memory probe writes (1024).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
out=bench/target/run
mkdir -p "$out"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

mvn -B -q -o -pl bench -am package -DskipTests 2>/dev/null || mvn -B -q -pl bench -am package -DskipTests
jar=bench/target/benchmarks.jar

# One fork per benchmark, 2 x 0.5 s warm-up, 3 x 0.5 s measured, allocation from -prof gc.
# shellcheck disable=SC2086
java -jar "$jar" -f 1 -wi 2 -w 500ms -i 3 -r 500ms -prof gc -rf json -rff "$out/jmh.json" \
    ${JMH_ARGS:-} "${BENCH_INCLUDE:-org\.iommu4j\..*}" 2>&1 | tee "$out/jmh.log"

# Row 8 in a JVM of its own, under the default collector and heap size: three cold JVMs, and the row takes the
# one whose build time is the median (a single cold start varies by several milliseconds).
for i in 1 2 3; do
    java -cp "$jar" org.iommu4j.bench.MemoryProbe "$out/memory-$i.json" "${MEMORY_MIB:-1024}"
done
median=$(for i in 1 2 3; do
    echo "$(grep -o '"buildMillis" *: *[0-9.]*' "$out/memory-$i.json" | grep -o '[0-9.]*$') $i"
done | sort -n | sed -n 2p | cut -d' ' -f2)
cp "$out/memory-$median.json" "$out/memory.json"

# The missed rows' benchmarks once more, with JMH's stack sampler: RESULTS.md shows where their time goes.
# NO_PROFILE=1 skips this pass.
java -cp "$jar" org.iommu4j.bench.Report --missed "$out/jmh.json" "$out/memory.json" "$out/missed.txt"
rm -f "$out/stack.log"
if [ -s "$out/missed.txt" ] && [ -z "${NO_PROFILE:-}" ]; then
    mapfile -t missed < "$out/missed.txt"
    java -jar "$jar" -f 1 -wi 1 -w 1s -i 2 -r 1s -prof 'stack:lines=2;top=8' ${JMH_ARGS:-} "${missed[@]}" \
        > "$out/stack.log" 2>&1
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
ended=$(date +%s)
{
    echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(java -version 2>&1 | head -1)," \
        "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(( (ended - started) / 60 )) min $(( (ended - started) % 60 )) s."
    echo ""
    echo "Load average (1, 5, 15 min) before: $load_before; after: $load_after. JMH 1.37: 1 fork, 2 x 0.5 s warm-up," \
        "3 x 0.5 s measured, -prof gc; AverageTime in ns/op; ± is JMH's 99.9% error. Multi-thread rows: throughput" \
        "at 2 threads over 1 thread, relative to the pure-ALU spin control's in the same run."
} > "$out/header.txt"
java -cp "$jar" org.iommu4j.bench.Report "$out/jmh.json" "$out/memory.json" bench/RESULTS.md bench/results.json \
    "$out/header.txt" bench/NOTES.md "$out/stack.log"
echo "wrote bench/RESULTS.md and bench/results.json in $(( ended - started )) s"
