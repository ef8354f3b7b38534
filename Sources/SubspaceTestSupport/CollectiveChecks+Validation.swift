import SubspaceDistributed

/// Checks that bad arguments throw `invalidArgument` naming the call — on every rank alike and before any
/// communication, so the ranks stay in step afterwards.
extension CollectiveChecks {
    static func validationErrors(_ comm: any Communicator) throws -> [String] {
        let n = comm.size
        let good = Array(repeating: 1, count: n)
        let one: [Float] = [1]
        var all = [Float](repeating: 0, count: n + 1)
        var failures = [String]()
        var lastSequence = 0

        func expectInvalid(
            _ label: String, _ operation: String, _ body: () throws -> Void
        ) {
            do {
                try body()
                failures.append("\(label): did not throw")
            } catch {
                guard let error = error as? CommunicatorError, case .invalidArgument(let text) = error.reason, !text.isEmpty else {
                    failures.append("\(label): threw \(error), expected invalidArgument")
                    return
                }
                if error.operation != operation { failures.append("\(label): operation \(error.operation)") }
                if error.rank != comm.rank { failures.append("\(label): rank \(error.rank)") }
                if error.sequence <= lastSequence {
                    failures.append("\(label): sequence \(error.sequence) after \(lastSequence)")
                }
                lastSequence = error.sequence
            }
        }

        one.withUnsafeBufferPointer { input in
            all.withUnsafeMutableBufferPointer { output in
                // `output` holds n + 1 elements: one too many for every use below.
                let full = UnsafeBufferPointer(output.extracting(0..<n))
                expectInvalid("counts too long", "allGather") {
                    try comm.allGather(input, counts: good + [1], output: output)
                }
                expectInvalid("output size", "allGather") {
                    try comm.allGather(input, counts: good, output: output)
                }
                expectInvalid("negative count", "reduceScatter") {
                    try comm.reduceScatter(
                        full, counts: [-1] + Array(repeating: 1, count: n - 1), output: output, op: .sum)
                }
                expectInvalid("input size", "reduceScatter") {
                    try comm.reduceScatter(input, counts: good.map { $0 * 2 }, output: output, op: .sum)
                }
                expectInvalid("output size", "reduceScatter") {
                    try comm.reduceScatter(full, counts: good, output: output, op: .sum)
                }
                expectInvalid("root too large", "broadcast") {
                    try comm.broadcast(output, root: n)
                }
                expectInvalid("negative root", "gather") {
                    try comm.gather(input, counts: good, output: output, root: -1)
                }
                expectInvalid("input count", "gather") {
                    try comm.gather(full.extracting(0..<0), counts: good, output: output, root: 0)
                }
            }
        }
        expectInvalid("negative color", "split") { _ = try comm.split(color: -1, key: 0) }
        // The ranks must still agree on the sequence of collectives.
        try comm.barrier()
        let total = try comm.allReduce(Int64(1))
        if total != Int64(n) { failures.append("allReduce after the errors gave \(total)") }
        return failures
    }
}
