import SubspaceDistributed
import Testing

@Suite struct ValidationTests {
    /// Runs `body` on a one-rank cluster and returns the `CommunicatorError` it throws.
    func error(_ body: @escaping @Sendable (LocalCommunicator) throws -> Void) -> CommunicatorError? {
        do {
            try LocalCluster.run(size: 1) { comm in try body(comm) }
            return nil
        } catch {
            return error as? CommunicatorError
        }
    }

    func isInvalid(_ error: CommunicatorError?, _ operation: String, _ fragment: String) -> Bool {
        guard let error, case .invalidArgument(let text) = error.reason else { return false }
        return error.operation == operation && text.contains(fragment)
    }

    @Test func countsMustHaveOneEntryPerRank() {
        let e = error { comm in _ = try comm.allGather([Float(1)], counts: [1, 1]) }
        #expect(isInvalid(e, "allGather", "2 entries"))
        #expect(e?.sequence == 1)
        #expect(e?.description.contains("allGather #1 on rank 0") == true)
    }

    @Test func countsMustBeNonNegative() {
        let e = error { comm in _ = try comm.reduceScatter([Float](), counts: [-2]) }
        #expect(isInvalid(e, "reduceScatter", "negative"))
    }

    @Test func bufferSizesMustMatchCounts() {
        let e = error { comm in _ = try comm.allGather([Float(1), 2], counts: [1]) }
        #expect(isInvalid(e, "allGather", "input holds 2 elements but 1"))
        let f = error { comm in _ = try comm.reduceScatter([Float(1)], counts: [2]) }
        #expect(isInvalid(f, "reduceScatter", "input"))
    }

    @Test func rootMustBeARank() {
        let e = error { comm in
            var values: [Float] = [1]
            try values.withUnsafeMutableBufferPointer { (buffer) throws(CommunicatorError) in
                try comm.broadcast(buffer, root: 1)
            }
        }
        #expect(isInvalid(e, "broadcast", "root 1"))
        let g = error { comm in _ = try comm.gather([Int32(1)], root: -1) }
        #expect(isInvalid(g, "gather", "root -1"))
    }

    @Test func gatherRootNeedsOutput() {
        let e = error { comm in
            try [Float(1)].withUnsafeBufferPointer { (input) throws(CommunicatorError) in
                try comm.gather(input, counts: [1], output: nil, root: 0)
            }
        }
        #expect(isInvalid(e, "gather", "nil"))
    }

    @Test func splitColorMustBeNonNegative() {
        let e = error { comm in _ = try comm.split(color: -1, key: 0) }
        #expect(isInvalid(e, "split", "color"))
    }

    @Test func sequenceNumbersCountEveryCall() {
        let e = error { comm in
            try comm.barrier()
            _ = try comm.allReduce(Float(1))
            _ = try comm.split(color: -3, key: 0)
        }
        // barrier #1, allReduce #2 (the scalar convenience is one call), split #3.
        #expect(e?.sequence == 3)
    }
}
