import Foundation
import SubspaceCore

/// Why a batch cannot be split as asked.
public struct SamplerError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The global order of training samples: a pure function of (seed, step), the same for every world size.
///
/// Epoch e visits samples `0..<count` in the order `RandomStream(seed: seed).split(e).permutation(count)`.
/// The epochs are concatenated into one endless sequence of positions, and step s (0-based) takes
/// positions `[s·G, (s+1)·G)` of it, G = `globalBatch`; a step may straddle two (or, when G > count, more)
/// epochs. Rank r of W takes the r-th of W equal contiguous slices of the step's global batch, so the
/// global batches, and thus the training, do not depend on W; and resuming at step s needs nothing but s.
///
/// The sampler keeps no position. It caches the most recent epoch's permutation (count ids), which makes
/// consecutive steps cheap; the cache changes no result.
public struct GlobalSampler: Sendable {
    public let count: Int
    public let globalBatch: Int
    public let seed: UInt64
    private let cache = PermutationCache()

    public init(count: Int, globalBatch: Int, seed: UInt64) {
        precondition(count > 0, "a sampler needs at least one sample")
        precondition(globalBatch > 0, "globalBatch \(globalBatch)")
        self.count = count
        self.globalBatch = globalBatch
        self.seed = seed
    }

    /// The epoch a step's first sample belongs to.
    public func epoch(ofStep step: Int) -> Int { step * globalBatch / count }

    /// Epoch e's order of the samples.
    public func permutation(epoch: Int) -> [Int] {
        precondition(epoch >= 0, "epoch \(epoch)")
        return cache.permutation(epoch: epoch) {
            var rng = RandomStream(seed: seed).split(UInt64(epoch))
            return rng.permutation(count)
        }
    }

    /// The global batch of step `step`: `globalBatch` sample indices.
    public func indices(step: Int) -> [Int] {
        positions(step * globalBatch..<(step + 1) * globalBatch, step: step)
    }

    /// Rank `rank`'s contiguous slice of step `step`'s global batch (`globalBatch / worldSize` indices).
    /// Throws unless `worldSize` divides `globalBatch`.
    public func indices(step: Int, rank: Int, worldSize: Int) throws -> [Int] {
        let local = try localBatch(worldSize: worldSize)
        precondition(rank >= 0 && rank < worldSize, "rank \(rank) of \(worldSize)")
        let start = step * globalBatch + rank * local
        return positions(start..<start + local, step: step)
    }

    /// Rank `rank`'s slice split into consecutive micro-batches of `microBatch` indices, for gradient
    /// accumulation. Throws unless `worldSize` divides `globalBatch` and `microBatch` divides the slice.
    public func microBatches(step: Int, rank: Int, worldSize: Int, microBatch: Int) throws -> [[Int]] {
        let local = try localBatch(worldSize: worldSize)
        guard microBatch > 0, local % microBatch == 0 else {
            throw SamplerError("micro-batch \(microBatch) does not divide the \(local) samples per rank (global batch \(globalBatch) over \(worldSize) ranks)")
        }
        let slice = try indices(step: step, rank: rank, worldSize: worldSize)
        return stride(from: 0, to: local, by: microBatch).map { Array(slice[$0..<$0 + microBatch]) }
    }

    /// Samples per rank per step. Throws unless `worldSize` divides `globalBatch`.
    public func localBatch(worldSize: Int) throws -> Int {
        guard worldSize > 0, globalBatch % worldSize == 0 else {
            throw SamplerError("global batch \(globalBatch) is not divisible by the world size \(worldSize)")
        }
        return globalBatch / worldSize
    }

    private func positions(_ range: Range<Int>, step: Int) -> [Int] {
        precondition(step >= 0, "step \(step)")
        var out: [Int] = []
        out.reserveCapacity(range.count)
        var position = range.lowerBound
        while position < range.upperBound {
            let epoch = position / count, offset = position % count
            let take = min(range.upperBound - position, count - offset)
            out += permutation(epoch: epoch)[offset..<offset + take]
            position += take
        }
        return out
    }
}

/// The last permutation computed, shared by copies of a sampler (and threads): a cache only.
final class PermutationCache: @unchecked Sendable {
    private let lock = NSLock()
    private var epoch = -1
    private var order: [Int] = []

    func permutation(epoch: Int, make: () -> [Int]) -> [Int] {
        lock.lock()
        if self.epoch == epoch {
            defer { lock.unlock() }
            return order
        }
        lock.unlock()
        let fresh = make()
        lock.lock()
        (self.epoch, order) = (epoch, fresh)
        lock.unlock()
        return fresh
    }
}
