import Foundation
import Synchronization
@testable import SubspaceDistributed
import Testing

@Suite struct WatchdogTests {
    /// Ranks 0 and 1 wait in barrier #2 for rank 2, which is late: their watchdogs fire naming rank 2 and
    /// the collective; once rank 2 arrives everything completes and the heartbeats close cleanly.
    @Test func namesTheRankThatHasNotArrived() throws {
        let reports = Mutex<[String]>([])
        try LocalCluster.run(size: 3, timeout: 10) { comm in
            let watched = try WatchedCommunicator(comm, timeout: 0.6) { message in reports.withLock { $0.append(message) } }
            try watched.barrier()
            if comm.rank == 2 { Thread.sleep(forTimeInterval: 2.0) }
            try watched.barrier()
            var value = [Double(comm.rank)]
            try watched.allReduce(&value, op: .sum)
            #expect(value == [3])
            try watched.close()
        }
        let all = reports.withLock { $0 }
        #expect(all.count == 2, "\(all)")
        for report in all {
            #expect(report.contains("'barrier' #2"), "\(report)")
            #expect(report.contains("ranks that have not reached it: 2 (last entered #1)"), "\(report)")
        }
    }

    /// Communicators split from a watched one are watched too, and free() closes them.
    @Test func splitIsWatched() throws {
        let reports = Mutex<[String]>([])
        try LocalCluster.run(size: 4, timeout: 10) { comm in
            let watched = try WatchedCommunicator(comm, timeout: 0.6) { message in reports.withLock { $0.append(message) } }
            let half = try watched.split(color: comm.rank % 2, key: comm.rank)
            #expect(half is WatchedCommunicator)
            if comm.rank == 3 { Thread.sleep(forTimeInterval: 2.0) }
            try half.barrier()
            try half.free()
            try watched.close()
        }
        let all = reports.withLock { $0 }
        #expect(all.count == 1, "\(all)")
        #expect(all.first?.contains("ranks that have not reached it: 3 (rank 1 here)") == true, "\(all)")
    }

    /// Who a report names: silent ranks first (whatever they last entered), then live ranks behind; a
    /// transport is blamed only when every rank has entered the collective and is alive. The first case
    /// is the one a CI run printed as "every rank has reached it" with rank 3 frozen inside #17.
    @Test func silentRanksAreNamedBeforeLiveOnes() {
        let world = [0, 1, 2, 3]
        let frozenInside = WatchedCommunicator.whoIsBehind(sequence: 17, heard: [17, 17, 17, 17], silentFor: [0, 0.1, 0, 5.2],
                                                           silenceLimit: 2.5, worldRanks: world)
        #expect(frozenInside == "ranks silent for over 2.5 s (stopped, hung, or their node unreachable): 3 (last heard 5 s ago, when it had entered #17)")
        let waitingBehindIt = WatchedCommunicator.whoIsBehind(sequence: 18, heard: [18, 18, 17, 17], silentFor: [0, 0, 0.2, 5.2],
                                                              silenceLimit: 2.5, worldRanks: world)
        #expect(waitingBehindIt.hasPrefix("ranks silent for over 2.5 s (stopped, hung, or their node unreachable): 3 (last heard 5 s ago, when it had entered #17)"))
        #expect(waitingBehindIt.hasSuffix("; live ranks that have not reached it: 2 (last entered #17)"))
        let slow = WatchedCommunicator.whoIsBehind(sequence: 5, heard: [5, 4], silentFor: [0, 0.5], silenceLimit: 2.5, worldRanks: [4, 7])
        #expect(slow == "ranks that have not reached it: 7 (rank 1 here) (last entered #4)")
        let stuck = WatchedCommunicator.whoIsBehind(sequence: 5, heard: [5, 6], silentFor: [0, 2.4], silenceLimit: 2.5, worldRanks: [0, 1])
        #expect(stuck == "every rank has reached it and is alive (a transport is stuck)")
    }
}
