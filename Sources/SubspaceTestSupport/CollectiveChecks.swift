import SubspaceDistributed

/// The outcome of one collective check on one rank.
public struct CollectiveCheckResult: Sendable, CustomStringConvertible {
    public let name: String
    public let passed: Bool
    /// Empty when passed; otherwise what went wrong on this rank.
    public let message: String

    public init(name: String, passed: Bool, message: String = "") {
        self.name = name
        self.passed = passed
        self.message = message
    }

    public var description: String { passed ? "PASS \(name)" : "FAIL \(name): \(message)" }
}

/// A suite of checks of the `Communicator` contract, written against `any Communicator` so that the same
/// checks run on in-process ranks (`swift test`) and on MPI ranks (`MPITests` under `mpirun`).
///
/// Every expected value is computed by hand from rank and size: rank r contributes values such as
/// `r + 1 + i`, whose reductions have closed forms. All ranks must call `run` together with the same
/// arguments. A check that throws unexpectedly fails, and the remaining checks are reported as skipped:
/// after an unexpected error the ranks may no longer agree on the sequence of collectives.
public enum CollectiveChecks {
    /// Runs every check on `comm`. `largeCount` is the element count of the large-buffer checks; make it
    /// big enough to take an implementation's large-message path (e.g. the shared-memory all-reduce).
    public static func run(on comm: any Communicator, largeCount: Int = 100_003) -> [CollectiveCheckResult] {
        var results = [CollectiveCheckResult]()
        var stopped: String?
        for (name, check) in checks(largeCount: largeCount) {
            if let stopped {
                results.append(.init(name: name, passed: false, message: "skipped after \(stopped) threw"))
                continue
            }
            do {
                let failures = try check(comm)
                results.append(.init(name: name, passed: failures.isEmpty, message: failures.joined(separator: "; ")))
            } catch {
                results.append(.init(name: name, passed: false, message: "threw \(error)"))
                stopped = name
            }
        }
        return results
    }

    typealias Check = (any Communicator) throws -> [String]

    static func checks(largeCount: Int) -> [(String, Check)] {
        [
            ("allReduce.sum.float32", { try allReduceSum($0, Float.self, counts: [0, 1, 7, 1000]) }),
            ("allReduce.sum.float64", { try allReduceSum($0, Double.self, counts: [3, 515]) }),
            ("allReduce.sum.int32", { try allReduceSum($0, Int32.self, counts: [5, 333]) }),
            ("allReduce.sum.int64", { try allReduceSum($0, Int64.self, counts: [5, 333]) }),
            ("allReduce.sum.uint8 (wrapping)", { try allReduceSum($0, UInt8.self, counts: [1, 300]) }),
            ("allReduce.maxmin.float32", { try allReduceMaxMin($0, Float.self, count: 37) }),
            ("allReduce.maxmin.float64", { try allReduceMaxMin($0, Double.self, count: 37) }),
            ("allReduce.maxmin.int32", { try allReduceMaxMin($0, Int32.self, count: 37) }),
            ("allReduce.maxmin.int64", { try allReduceMaxMin($0, Int64.self, count: 37) }),
            ("allReduce.maxmin.uint8", { try allReduceMaxMin($0, UInt8.self, count: 37) }),
            ("allReduce.large.sum.float32", { try allReduceSum($0, Float.self, counts: [largeCount]) }),
            ("allReduce.large.sum.float64", { try allReduceSum($0, Double.self, counts: [largeCount / 2 + 1]) }),
            ("allReduce.large.maxmin.int32", { try allReduceMaxMin($0, Int32.self, count: largeCount) }),
            ("allReduce.large.sum.uint8", { try allReduceSum($0, UInt8.self, counts: [largeCount + 5]) }),
            ("allReduce.scalar+array", scalarAndArrayAllReduce),
            ("reduceScatter.uneven.float32", { try reduceScatterUneven($0, Float.self, op: .sum) }),
            ("reduceScatter.uneven.int64", { try reduceScatterUneven($0, Int64.self, op: .sum) }),
            ("reduceScatter.uneven.max.int32", { try reduceScatterUneven($0, Int32.self, op: .max) }),
            ("reduceScatter.uneven.min.float64", { try reduceScatterUneven($0, Double.self, op: .min) }),
            ("reduceScatter.large.balanced.float32", { try reduceScatterLarge($0, Float.self, total: largeCount) }),
            ("reduceScatter.large.padded.float64", { try reduceScatterLarge($0, Double.self, total: largeCount / 3, padded: true) }),
            ("allGather.uneven.int32", { try allGatherUneven($0, Int32.self) }),
            ("allGather.uneven.float32", { try allGatherUneven($0, Float.self) }),
            ("allGather.uneven.uint8", { try allGatherUneven($0, UInt8.self) }),
            ("allGather.large.float32", { try allGatherLarge($0, total: largeCount) }),
            ("allGather.scalar+arrays", allGatherConveniences),
            ("broadcast.nonzeroRoot.float64", { try broadcastFromLastRank($0, Double.self) }),
            ("broadcast.nonzeroRoot.uint8", { try broadcastFromLastRank($0, UInt8.self) }),
            ("broadcast.array.resizes", broadcastArray),
            ("broadcast.string+bytes", broadcastStringAndBytes),
            ("gather.uneven.int64", { try gatherUneven($0, Int64.self) }),
            ("gather.uneven.float32", { try gatherUneven($0, Float.self) }),
            ("gather.arrays", gatherArrays),
            ("barrier", { comm in
                for _ in 0..<3 { try comm.barrier() }
                return []
            }),
            ("split.evenOdd", splitEvenOdd),
            ("split.sameColor", splitSameColor),
            ("validation", validationErrors),
        ]
    }
}
