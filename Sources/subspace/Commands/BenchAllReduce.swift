import ArgumentParser
import Foundation
import SubspaceTraining
import SubspaceDistributed

/// Times the `Communicator` all-reduce (with the algorithm it picks for each size) against plain
/// `MPI_Allreduce` of the same bytes in the same run, and checks that the two agree. Run under `mpirun`;
/// rank 0 prints one line per size and, last, `key=value` figures for the largest size.
///
/// Bus bandwidth follows nccl-tests: bytes / time × 2(n−1)/n, the traffic each rank's link carries in a
/// ring all-reduce, so figures are comparable across rank counts (0 for one rank).
struct BenchAllReduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "All-reduce time and bus bandwidth against raw MPI_Allreduce; run under mpirun.")

    @Option(help: "Buffer sizes in bytes, comma-separated, with optional K/M/G suffixes (powers of 1024).")
    var sizes: String = "1M,16M,64M"
    @Option(help: "Timed iterations per size and variant (the median is reported).")
    var iterations: Int = 20
    @Option(help: "Untimed iterations per size and variant before timing.")
    var warmup: Int = 3
    @Option(help: "Bytes per rank per shared-memory step (default: the communicator's policy), K/M suffixes.")
    var chunk: String?
    @Option(help: "Smallest buffer that takes the shared-memory path (default: the communicator's policy), K/M suffixes.")
    var shmMinBytes: String?
    @Flag(help: "Fit the α–β model of a ring all-reduce (latency α, seconds per byte β) to the times of all sizes and print it.")
    var fit = false
    @Option(help: "With --fit: predict the all-reduce of this many gradient bytes per training step (K/M/G suffixes) as nodes are added.")
    var gradientBytes: String?
    @Option(help: "With --gradient-bytes: node counts to predict for, comma-separated.")
    var predictNodes: String = "1,2,3,4,8,16,32"
    @Option(help: "With --gradient-bytes: a step's time without communication in ms (e.g. from `bench train`), added to predict step times.")
    var computeMs: Double?

    func validate() throws {
        guard let parsed = Self.parseBytes(sizes), !parsed.isEmpty,
            parsed.allSatisfy({ $0 >= 4 && $0 % 4 == 0 })
        else {
            throw ValidationError("--sizes must be byte counts that are multiples of 4 (e.g. 1M,16M,64M); got '\(sizes)'")
        }
        // Four buffers of the largest size per rank (source, work, and the two of the agreement check).
        let largest = Double(parsed.max()!) * 4, ranksHere = MemoryEstimate.ranksOnThisNode(), machine = MemoryEstimate.machineBytes()
        guard largest * Double(ranksHere) <= machine else {
            throw ValidationError("--sizes \(sizes): the largest size needs \(MemoryEstimate.bytes(largest)) per rank (4 buffers)"
                                  + (ranksHere > 1 ? " × \(ranksHere) ranks on this node" : "")
                                  + ", more than the \(MemoryEstimate.bytes(machine)) of memory this machine has")
        }
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        if let chunk, Self.parseBytes(chunk)?.count != 1 || Self.parseBytes(chunk)![0] < 4096 {
            throw ValidationError("--chunk must be one byte count of at least 4K; got '\(chunk)'")
        }
        if let shmMinBytes, Self.parseBytes(shmMinBytes)?.count != 1 {
            throw ValidationError("--shm-min-bytes must be one byte count; got '\(shmMinBytes)'")
        }
        if fit, Set(parsed).count < 2 { throw ValidationError("--fit needs at least two sizes in --sizes") }
        if let gradientBytes {
            guard fit else { throw ValidationError("--gradient-bytes needs --fit") }
            guard Self.parseBytes(gradientBytes)?.count == 1 else {
                throw ValidationError("--gradient-bytes must be one byte count (e.g. 12M); got '\(gradientBytes)'")
            }
        }
        guard let nodes = Self.parseNodes(predictNodes), !nodes.isEmpty else {
            throw ValidationError("--predict-nodes must be positive whole numbers, comma-separated; got '\(predictNodes)'")
        }
        _ = nodes
        if let computeMs, !(computeMs >= 0) { throw ValidationError("--compute-ms must be ≥ 0") }
    }

    /// Parses "1M,16M,512" into bytes; nil if any entry is malformed.
    static func parseBytes(_ text: String) -> [Int]? {
        let values = text.split(separator: ",").map { item -> Int? in
            var digits = item.trimmingCharacters(in: .whitespaces).uppercased()
            var scale = 1
            if let suffix = digits.last, let power = ["K": 10, "M": 20, "G": 30][String(suffix)] {
                scale = 1 << power
                digits.removeLast()
            }
            guard let value = Int(digits), value > 0 else { return nil }
            let (bytes, overflow) = value.multipliedReportingOverflow(by: scale)
            return overflow ? nil : bytes
        }
        return values.contains(nil) ? nil : values.compactMap { $0 }
    }

    static func parseNodes(_ text: String) -> [Int]? {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return values.allSatisfy({ ($0 ?? 0) >= 1 }) ? values.compactMap { $0 } : nil
    }

    func run() throws {
        // The level the commands run at (MULTIPLE unless SUBSPACE_MPI_THREAD_LEVEL says otherwise), so its cost shows.
        let environment = try MPIEnvironment.initialize(threadLevel: RankedJob.threadLevel)
        if environment.world.rank == 0 { print("# thread level \(environment.providedThreadLevel)") }
        do {
            try measure(environment.world)
            try environment.finalize()
        } catch {
            // Another rank may be blocked in a collective: take the whole job down rather than hang it.
            FileHandle.standardError.write(Data("[rank \(environment.world.rank)] allreduce bench: \(error)\n".utf8))
            environment.abort(code: 1)
        }
    }

    private func measure(_ world: MPICommunicator) throws {
        let node = MPIEnvironment.current?.node
        if let chunk {
            world.sharedMemoryPolicy.chunkBytes = Self.parseBytes(chunk)![0]
        }
        if let shmMinBytes {
            world.sharedMemoryPolicy.minimumBytes = Self.parseBytes(shmMinBytes)![0]
        }
        let n = world.size
        let busFactor = n > 1 ? 2 * Double(n - 1) / Double(n) : 0
        if world.rank == 0 {
            print("# ranks=\(n) single_node=\(world.isSingleNode) policy=\(world.sharedMemoryPolicy)")
        }
        var last = ""
        var samples: [(bytes: Int, seconds: Double)] = []
        for bytes in Self.parseBytes(sizes)!.sorted() {
            let count = bytes / MemoryLayout<Float>.stride
            let algorithm = world.reductionAlgorithm(forBytes: bytes)
            // Different pseudo-random values on every rank, so a wrong reduction cannot pass by symmetry.
            var state = UInt64(world.rank + 1) &* 0x9E37_79B9_7F4A_7C15
            let source = (0..<count).map { _ -> Float in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int32(truncatingIfNeeded: state >> 33)) / Float(1 << 30)
            }
            var work = source
            var times: [[Double]] = [[], []]  // the chosen algorithm, then MPI_Allreduce
            // Alternate the two variants so that machine noise hits both alike.
            for iteration in 0..<(warmup + iterations) {
                for (index, variant) in [algorithm, .mpi].enumerated() {
                    work.withUnsafeMutableBufferPointer { w in
                        source.withUnsafeBufferPointer { s in _ = w.update(fromContentsOf: s) }
                    }
                    try world.barrier()
                    let start = DispatchTime.now().uptimeNanoseconds
                    try work.withUnsafeMutableBufferPointer { try world.allReduce($0, op: .sum, algorithm: variant) }
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                    if iteration >= warmup { times[index].append(seconds) }
                }
            }
            // A collective is as slow as its slowest rank.
            let time = try world.allReduce(Self.median(times[0]), op: .max)
            let mpiTime = try world.allReduce(Self.median(times[1]), op: .max)
            let difference = try agreement(world, source: source, algorithm: algorithm)
            samples.append((bytes, time))
            let busbw = Double(bytes) / time * busFactor * 1e-9
            let mpiBusbw = Double(bytes) / mpiTime * busFactor * 1e-9
            last = [
                "bytes=\(bytes)", "ranks=\(n)", "algorithm=\(algorithm.rawValue)",
                "time_ms=\(Self.format(time * 1e3))", "busbw_gbps=\(Self.format(busbw))",
                "mpi_time_ms=\(Self.format(mpiTime * 1e3))", "mpi_busbw_gbps=\(Self.format(mpiBusbw))",
                "speedup=\(Self.format(mpiTime / time))", "max_abs_diff=\(difference)",
            ].joined(separator: " ")
            if world.rank == 0 { print(last) }
        }
        if fit, world.rank == 0 {
            let ranksPerNode = node?.size ?? 1
            last += report(samples: samples, ranks: n, ranksPerNode: ranksPerNode)
        }
        if world.rank == 0 { print(last) }
    }

    /// Prints the α–β fit (and, with --gradient-bytes, the predicted all-reduce and step times as nodes
    /// are added, at this run's ranks per node); returns its `key=value` figures for the last line.
    private func report(samples: [(bytes: Int, seconds: Double)], ranks: Int, ranksPerNode: Int) -> String {
        let nodes = ranks / max(1, ranksPerNode)
        let layout = "\(ranks) ranks = \(nodes) node\(nodes == 1 ? "" : "s") × \(ranksPerNode)"
        guard let fitted = AllReduceCostModel.fit(samples, ranks: ranks) else {
            print("# α–β fit: not possible with \(layout) and \(samples.count) sizes")
            return ""
        }
        let model = fitted.model
        print("# α–β fit of the ring all-reduce t = 2(p−1)α + 2(p−1)/p·n·β over \(layout) (p = \(ranks), sizes "
              + samples.map { MemoryEstimate.bytes(Double($0.bytes)) }.joined(separator: ", ") + "): \(model); "
              + String(format: "rms relative error %.1f%%", fitted.relativeError * 100)
              + (fitted.pinned ? " (a negative coefficient was pinned to 0)" : ""))
        var figures = String(format: " alpha_us=%.4g beta_ns_per_byte=%.4g fit_rms_rel_err=%.3g",
                             model.alpha * 1e6, model.beta * 1e9, fitted.relativeError)
        guard let gradientBytes, let bytes = Self.parseBytes(gradientBytes)?.first else { return figures }
        print("# predicted all-reduce of \(MemoryEstimate.bytes(Double(bytes))) of gradients per step, \(ranksPerNode) rank"
              + "\(ranksPerNode == 1 ? "" : "s") per node, every rank a step of the ring"
              + (computeMs.map { String(format: ", plus %.4g ms of compute", $0) } ?? "") + ":")
        print("#   nodes  ranks  allreduce_ms" + (computeMs == nil ? "" : "  step_ms"))
        for count in Self.parseNodes(predictNodes)! {
            let p = count * ranksPerNode
            let ms = model.seconds(bytes: Double(bytes), ranks: p) * 1e3
            print(String(format: "#   %5ld  %5ld  %12.4g", count, p, ms) + (computeMs.map { String(format: "  %7.4g", $0 + ms) } ?? ""))
            if count == nodes { figures += String(format: " predicted_allreduce_ms=%.4g", ms) }
        }
        return figures
    }

    /// Reduces `source` with the chosen algorithm and with MPI_Allreduce and returns the largest
    /// difference; throws if they disagree by more than rounding. Two ranks must agree exactly (a + b
    /// either way); with more, MPI may associate the sum differently.
    private func agreement(
        _ world: MPICommunicator, source: [Float], algorithm: MPICollectiveAlgorithm
    ) throws -> Float {
        var chosen = source
        var reference = source
        try chosen.withUnsafeMutableBufferPointer { try world.allReduce($0, op: .sum, algorithm: algorithm) }
        try reference.withUnsafeMutableBufferPointer { try world.allReduce($0, op: .sum, algorithm: .mpi) }
        let local = zip(chosen, reference).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        let worst = try world.allReduce(local, op: .max)
        let tolerance: Float = world.size <= 2 ? 0 : 1e-5 * Float(world.size)
        guard worst <= tolerance else {
            throw ValidationError("\(algorithm.rawValue) and MPI_Allreduce differ by up to \(worst)")
        }
        return worst
    }

    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    private static func format(_ value: Double) -> String {
        String(format: value.magnitude >= 100 ? "%.1f" : "%.4g", value)
    }
}
