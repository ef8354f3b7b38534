/// One training sequence: `ids[t]` is the input at position t and `targets[t]` the id to predict there,
/// or `TrainingSample.ignored` (−100, PyTorch's `ignore_index`) where the position does not count in the
/// loss. Both have the source's `sequence` length.
public struct TrainingSample: Sendable, Equatable {
    public static let ignored: Int32 = -100

    public var ids: [Int32]
    public var targets: [Int32]

    public init(ids: [Int32], targets: [Int32]) {
        precondition(ids.count == targets.count, "ids and targets differ in length")
        self.ids = ids
        self.targets = targets
    }
}

/// Numbered training samples of a fixed length: what the sampler's indices select.
///
/// A sample is a pure function of its index, so any rank can build any sample, in any order.
public protocol TrainingSampleSource: Sendable {
    /// Samples `0..<count`.
    var count: Int { get }
    /// Positions per sample (T).
    var sequence: Int { get }
    /// Writes sample `index` into `ids` and `targets`, each exactly `sequence` long.
    func write(_ index: Int, ids: UnsafeMutableBufferPointer<Int32>, targets: UnsafeMutableBufferPointer<Int32>)
}

extension TrainingSampleSource {
    /// Sample `index` as arrays.
    public func sample(_ index: Int) -> TrainingSample {
        var ids = [Int32](repeating: 0, count: sequence), targets = [Int32](repeating: 0, count: sequence)
        ids.withUnsafeMutableBufferPointer { i in targets.withUnsafeMutableBufferPointer { t in write(index, ids: i, targets: t) } }
        return TrainingSample(ids: ids, targets: targets)
    }

    /// Samples `indices` as a row-major (B, T) batch in `ids` and `targets`, resized to B·T; storage is
    /// reused when the batch size does not change, so a training loop allocates nothing here.
    public func batch(_ indices: some Collection<Int>, ids: inout [Int32], targets: inout [Int32]) {
        let T = sequence, n = indices.count * T
        if ids.count != n { ids = [Int32](repeating: 0, count: n) }
        if targets.count != n { targets = [Int32](repeating: 0, count: n) }
        ids.withUnsafeMutableBufferPointer { allIDs in
            targets.withUnsafeMutableBufferPointer { allTargets in
                for (row, index) in indices.enumerated() {
                    write(index, ids: UnsafeMutableBufferPointer(rebasing: allIDs[row * T..<(row + 1) * T]),
                          targets: UnsafeMutableBufferPointer(rebasing: allTargets[row * T..<(row + 1) * T]))
                }
            }
        }
    }
}
