import Foundation
import SubspaceDistributed
import SubspaceTestSupport
import Testing

@Suite struct LocalClusterTests {
    @Test(arguments: [1, 2, 3, 4])
    func collectiveChecksPass(size: Int) throws {
        let perRank = try LocalCluster.run(size: size, timeout: 30) { comm in
            CollectiveChecks.run(on: comm, largeCount: 20_011)
        }
        #expect(perRank.count == size)
        for (rank, results) in perRank.enumerated() {
            #expect(!results.isEmpty)
            for result in results where !result.passed {
                Issue.record("[rank \(rank)/\(size)] \(result)")
            }
        }
    }

    @Test func runReturnsResultsInRankOrder() throws {
        let ranks = try LocalCluster.run(size: 3) { comm in comm.rank * 10 + comm.size }
        #expect(ranks == [3, 13, 23])
    }

    @Test func barrierTimesOutNamingTheCollective() throws {
        let start = Date()
        do {
            try LocalCluster.run(size: 2, timeout: 0.2) { comm in
                if comm.rank == 0 {
                    try comm.barrier()
                    try comm.barrier()
                } else {
                    try comm.barrier()
                    Thread.sleep(forTimeInterval: 1)
                }
            }
            Issue.record("did not throw")
        } catch let error as CommunicatorError {
            #expect(error.operation == "barrier")
            #expect(error.sequence == 2)
            #expect(error.rank == 0)
            #expect(error.reason == .timedOut(seconds: 0.2))
            #expect(error.description.contains("barrier #2"))
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func rankThatReturnsEarlyIsReportedNotWaitedFor() throws {
        let start = Date()
        #expect {
            try LocalCluster.run(size: 3, timeout: 30) { comm in
                if comm.rank != 2 { try comm.barrier() }
            }
        } throws: { error in
            guard let error = error as? CommunicatorError, case .mismatch(let text) = error.reason else {
                return false
            }
            return error.operation == "barrier" && text.contains("rank 2")
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    struct Boom: Error {}

    @Test func firstErrorIsRethrownAndReleasesWaitingRanks() throws {
        let start = Date()
        #expect(throws: Boom.self) {
            try LocalCluster.run(size: 4, timeout: 30) { comm in
                if comm.rank == 3 { throw Boom() }
                var values: [Float] = [1, 2, 3]
                try comm.allReduce(&values)
            }
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func mismatchedCollectivesAreDetected() throws {
        #expect {
            try LocalCluster.run(size: 2) { comm in
                if comm.rank == 0 {
                    try comm.barrier()
                } else {
                    _ = try comm.allReduce(Float(1))
                }
            }
        } throws: { error in
            guard let error = error as? CommunicatorError, case .mismatch = error.reason else { return false }
            return true
        }
        #expect {
            try LocalCluster.run(size: 2) { comm in
                var values = [Float](repeating: 1, count: comm.rank + 1)
                try comm.allReduce(&values)
            }
        } throws: { error in
            guard let error = error as? CommunicatorError, case .mismatch(let text) = error.reason else {
                return false
            }
            return error.operation == "allReduce" && text.contains("count")
        }
    }

    @Test func sumIsBitIdenticalAcrossRanks() throws {
        let results = try LocalCluster.run(size: 3) { comm in
            var values = (0..<1000).map { Float(0.1) * Float($0 + comm.rank) + 1e-7 * Float(comm.rank) }
            try comm.allReduce(&values)
            return values
        }
        #expect(results[0] == results[1])
        #expect(results[1] == results[2])
    }

    @Test func subCommunicatorsRunIndependently() throws {
        // Two groups of two run different numbers of collectives at the same time.
        let sums = try LocalCluster.run(size: 4) { comm in
            let group = try comm.split(color: comm.rank / 2, key: comm.rank)
            var total = Int64(0)
            for step in 0..<(comm.rank < 2 ? 5 : 50) {
                total += try group.allReduce(Int64(step))
            }
            try comm.barrier()
            return total
        }
        #expect(sums == [20, 20, 2450, 2450])
    }
}
