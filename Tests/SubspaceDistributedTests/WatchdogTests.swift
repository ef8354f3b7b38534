import Foundation
import Synchronization
import SubspaceDistributed
import Testing

@Suite struct WatchdogTests {
    /// Ranks 0 and 1 wait in barrier #2 for rank 2, which is late: their watchdogs fire naming rank 2 and
    /// the collective; once rank 2 arrives everything completes and the heartbeats close cleanly.
    @Test func namesTheRankThatHasNotArrived() throws {
        let reports = Mutex<[String]>([])
        try LocalCluster.run(size: 3, timeout: 10) { comm in
            let watched = try WatchedCommunicator(comm, timeout: 0.3) { message in reports.withLock { $0.append(message) } }
            try watched.barrier()
            if comm.rank == 2 { Thread.sleep(forTimeInterval: 1.2) }
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
            let watched = try WatchedCommunicator(comm, timeout: 0.3) { message in reports.withLock { $0.append(message) } }
            let half = try watched.split(color: comm.rank % 2, key: comm.rank)
            #expect(half is WatchedCommunicator)
            if comm.rank == 3 { Thread.sleep(forTimeInterval: 1.2) }
            try half.barrier()
            try half.free()
            try watched.close()
        }
        let all = reports.withLock { $0 }
        #expect(all.count == 1, "\(all)")
        #expect(all.first?.contains("ranks that have not reached it: 3 (rank 1 here)") == true, "\(all)")
    }
}
