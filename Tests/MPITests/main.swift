// Multi-rank tests of MPICommunicator, run under mpirun:
//   mpirun -np 2 .build/release/MPITests
// Runs the shared CollectiveChecks suite on the world communicator (default policy, then with the
// shared-memory path forced for every size), plus MPI-specific checks. Each rank prints its failures
// tagged [rank r/N]; rank 0 prints the totals over all ranks as its last line, "N passed, N failed".
// Exits non-zero if any rank failed.

import Foundation
import Synchronization
import SubspaceDistributed
import SubspaceTestSupport

let environment: MPIEnvironment
do {
    environment = try MPIEnvironment.initialize(threadLevel: .multiple)  // the watchdog's heartbeats need it
} catch {
    FileHandle.standardError.write(Data("MPITests: \(error)\n".utf8))
    exit(2)
}
let world = environment.world
let tag = "[rank \(world.rank)/\(world.size)]"
var results = [CollectiveCheckResult]()

func prefixed(_ suite: String, _ checks: [CollectiveCheckResult]) -> [CollectiveCheckResult] {
    checks.map { CollectiveCheckResult(name: "\(suite)/\($0.name)", passed: $0.passed, message: $0.message) }
}

/// Runs one MPI-specific check; a thrown error fails it.
@MainActor
func check(_ name: String, _ body: () throws -> [String]) {
    do {
        let failures = try body()
        results.append(.init(name: name, passed: failures.isEmpty, message: failures.joined(separator: "; ")))
    } catch {
        results.append(.init(name: name, passed: false, message: "threw \(error)"))
    }
}

/// Deterministic pseudo-random floats in [-1, 1), different on every rank.
func noise(count: Int, seed: Int) -> [Float] {
    var state = UInt64(truncatingIfNeeded: seed) &* 6364136223846793005 &+ 1442695040888963407
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int32(truncatingIfNeeded: state >> 32)) / Float(1 << 31)
    }
}

check("environment") {
    var failures = [String]()
    if environment.providedThreadLevel < .funneled {
        failures.append("provided thread level \(environment.providedThreadLevel)")
    }
    if !(0..<environment.nodeSize).contains(environment.nodeRank) {
        failures.append("node rank \(environment.nodeRank) of \(environment.nodeSize)")
    }
    if environment.processorName.isEmpty { failures.append("empty processor name") }
    if world.isSingleNode != (environment.nodeSize == world.size) {
        failures.append("isSingleNode \(world.isSingleNode) but node size \(environment.nodeSize)")
    }
    let expected = world.size > 1 && world.isSingleNode ? "shm" : "mpi"
    let large = world.allReduceAlgorithm(forBytes: 64 << 20)
    if large != expected { failures.append("64 MiB all-reduce uses \(large), expected \(expected)") }
    if world.allReduceAlgorithm(forBytes: 1024) != "mpi" { failures.append("1 KiB all-reduce does not use mpi") }
    return failures
}

// The default policy: small buffers through MPI, the large checks (1.2 MB) through shared memory.
results += prefixed("default", CollectiveChecks.run(on: world, largeCount: 300_007))

// Every reduction through shared memory, in 4 KiB steps, so odd sizes and many steps are exercised.
let defaultPolicy = world.sharedMemoryPolicy
world.sharedMemoryPolicy = SharedMemoryPolicy(minimumBytes: 0, chunkBytes: 4096)
results += prefixed("shm-forced", CollectiveChecks.run(on: world, largeCount: 30_011))
world.sharedMemoryPolicy = defaultPolicy

if world.isSingleNode && world.size > 1 {
    check("shm matches MPI_Allreduce") {
        var failures = [String]()
        for count in [1, 17, 1000, 1 << 20, (3 << 20) + 5] {
            let input = noise(count: count, seed: world.rank + count)
            var viaMPI = input
            var viaShm = input
            try viaMPI.withUnsafeMutableBufferPointer { try world.allReduce($0, op: .sum, algorithm: .mpi) }
            try viaShm.withUnsafeMutableBufferPointer { try world.allReduce($0, op: .sum, algorithm: .sharedMemory) }
            // Two ranks: a + b either way. More ranks: MPI may associate differently, so compare to
            // within rounding of the sum's magnitude.
            let tolerance: Float = world.size <= 2 ? 0 : 1e-6 * Float(world.size)
            let worst = zip(viaMPI, viaShm).map { abs($0 - $1) }.max() ?? 0
            if worst > tolerance { failures.append("count \(count): max difference \(worst)") }
            // The shm result is computed once per element, so every rank holds identical bits.
            let digest = viaShm.reduce(UInt64(0)) { $0 &* 31 &+ UInt64($1.bitPattern) }
            let digests = try world.allGather(Int64(bitPattern: digest))
            if Set(digests).count != 1 { failures.append("count \(count): ranks hold different results") }
        }
        return failures
    }
    check("shm reduceScatter matches MPI_Reduce_scatter") {
        var failures = [String]()
        for total in [5, 4099, (1 << 20) + 3] {
            let plan = ShardPlan.balanced(total: total, parts: world.size)
            let input = noise(count: total, seed: 7 * world.rank + total)
            var viaMPI = [Float](repeating: 0, count: plan.counts[world.rank])
            var viaShm = viaMPI
            for (algorithm, output) in [(MPICollectiveAlgorithm.mpi, 0), (.sharedMemory, 1)] {
                try input.withUnsafeBufferPointer { source in
                    if output == 0 {
                        try viaMPI.withUnsafeMutableBufferPointer {
                            try world.reduceScatter(source, counts: plan.counts, output: $0, op: .sum, algorithm: algorithm)
                        }
                    } else {
                        try viaShm.withUnsafeMutableBufferPointer {
                            try world.reduceScatter(source, counts: plan.counts, output: $0, op: .sum, algorithm: algorithm)
                        }
                    }
                }
            }
            let tolerance: Float = world.size <= 2 ? 0 : 1e-6 * Float(world.size)
            let worst = zip(viaMPI, viaShm).map { abs($0 - $1) }.max() ?? 0
            if worst > tolerance { failures.append("total \(total): max difference \(worst)") }
        }
        return failures
    }
}

// A rank frozen inside a collective it has entered: by sequence numbers alone it looks as far along as
// the ranks waiting for it ("every rank has reached it"), which is what a CI run once printed. The last
// rank enters all-reduce #2 (16 MiB: many steps, so the others cannot finish it without the victim) and
// stops itself (SIGSTOP) 0.6 s later, its heartbeats (every 0.1 s) having said #2; the others enter at
// 2 s, and their watchdogs (limit 2 s) must name it as silent. The victim is resumed (same node: its pid)
// only once every other rank has reported — each report marks a file, and the rank that completes the set
// sends SIGCONT — because a rank whose watchdog fires a moment later than rank 0's would otherwise see the
// all-reduce finish first and report nothing (a CI run at np = 3 did). Rank 0 resumes it anyway after
// 20 s, so a missing report fails the check instead of hanging it. The stopped rank's own watchdog may
// fire on waking (it waited in #2 the whole time); what it says is not checked.
if world.isSingleNode && world.size > 1 && environment.providedThreadLevel == .multiple {
    check("watchdog names a rank stopped inside a collective as silent") {
        let victim = world.size - 1
        let pids = try world.allGather(Int64(getpid()))
        let reports = Mutex<[String]>([])
        // One marker file per reporting rank, in a folder named after rank 0's pid (unique per job).
        // Made fresh by rank 0 before anyone marks it, so a folder left by an earlier job with the same pid
        // cannot count.
        let markers = NSTemporaryDirectory() + "subspace-mpitests-watchdog-\(pids[0])"
        if world.rank == 0 {
            try? FileManager.default.removeItem(atPath: markers)
            try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
        }
        try world.barrier()
        let others = world.size - 1
        let victimPid = pid_t(pids[victim])
        let rank = world.rank
        let watched = try WatchedCommunicator(world, timeout: 2) { message in
            reports.withLock { $0.append(message) }
            guard rank != victim else { return }
            FileManager.default.createFile(atPath: markers + "/\(rank)", contents: nil)
            let marked = (try? FileManager.default.contentsOfDirectory(atPath: markers).count) ?? 0
            if marked >= others { kill(victimPid, SIGCONT) }
        }
        try watched.barrier()
        if world.rank == victim {
            Thread.detachNewThread { usleep(600_000); kill(getpid(), SIGSTOP) }
        } else {
            usleep(2_000_000)
        }
        let finished = Atomic<Bool>(false)
        if world.rank == 0 {
            Thread.detachNewThread {
                for _ in 0..<2000 where !finished.load(ordering: .acquiring) { usleep(10_000) }
                if !finished.load(ordering: .acquiring) { kill(victimPid, SIGCONT) }
            }
        }
        var values = [Float](repeating: Float(world.rank), count: 4 << 20)
        try watched.allReduce(&values, op: .sum)
        finished.store(true, ordering: .releasing)
        try watched.close()
        try world.barrier()
        if world.rank == 0 { try? FileManager.default.removeItem(atPath: markers) }
        let sum = Float(world.size * (world.size - 1) / 2)
        if values.first != sum || values.last != sum { return ["all-reduce after the resume gave \(values.first!), expected \(sum)"] }
        guard world.rank != victim else { return [] }
        let all = reports.withLock { $0 }
        let expected = "ranks silent for over \(watched.silenceLimit) s (stopped, hung, or their node unreachable): \(victim) (last heard "
        return all.count == 1 && all[0].contains("'allReduce' #2") && all[0].contains(expected) && all[0].contains("when it had entered #2)") ? []
            : ["expected one report naming rank \(victim) as silent in all-reduce #2, got \(all)"]
    }
}

for result in results where !result.passed {
    print("\(tag) FAIL \(result.name): \(result.message)")
}
let passed = results.filter(\.passed).count
var totals = [Int64(passed), Int64(results.count - passed)]
do {
    try world.allReduce(&totals)
    if world.rank == 0 {
        print("\(totals[0]) passed, \(totals[1]) failed")
    }
    try environment.finalize()
} catch {
    print("\(tag) MPITests: \(error)")
    environment.abort(code: 3)
}
exit(totals[1] == 0 ? 0 : 1)
