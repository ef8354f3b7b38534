/// Contiguous shards of a flat buffer of `total` elements over `parts` ranks.
///
/// Two layouts:
/// - `balanced`: shard sizes differ by at most one, earlier ranks take the larger ones, and the shards
///   tile exactly `0..<total` (`paddedTotal == total`).
/// - `padded(alignment:)`: every shard has the same size, the smallest multiple of `alignment` that
///   covers `ceil(total / parts)`; the buffer is padded to `paddedTotal = shardSize * parts`, and the
///   trailing shards hold the padding (`validRange(of:)` gives the real elements of each shard). Equal
///   shards suit collectives that want one count per rank and aligned shard starts.
public struct ShardPlan: Sendable, Equatable, CustomStringConvertible {
    public enum Layout: Sendable, Equatable {
        case balanced
        case padded(alignment: Int)
    }

    /// Elements in the unpadded buffer.
    public let total: Int
    /// Number of shards (ranks).
    public let parts: Int
    public let layout: Layout
    /// Elements in each shard, indexed by rank (padding included).
    public let counts: [Int]
    /// Start of each shard in the (padded) buffer, indexed by rank.
    public let offsets: [Int]
    /// Length of the buffer the shards tile: `total` for `balanced`, `shardSize * parts` for `padded`.
    public let paddedTotal: Int

    /// Requires `total >= 0`, `parts >= 1` and, for `padded`, `alignment >= 1`.
    public init(total: Int, parts: Int, layout: Layout = .balanced) {
        precondition(total >= 0, "ShardPlan: total \(total) is negative")
        precondition(parts >= 1, "ShardPlan: parts \(parts) must be at least 1")
        self.total = total
        self.parts = parts
        self.layout = layout
        switch layout {
        case .balanced:
            let base = total / parts
            let extra = total % parts
            counts = (0..<parts).map { base + ($0 < extra ? 1 : 0) }
        case .padded(let alignment):
            precondition(alignment >= 1, "ShardPlan: alignment \(alignment) must be at least 1")
            let perPart = (total + parts - 1) / parts
            let shard = (perPart + alignment - 1) / alignment * alignment
            counts = Array(repeating: shard, count: parts)
        }
        var running = 0
        offsets = counts.map { count in
            defer { running += count }
            return running
        }
        paddedTotal = running
    }

    /// A balanced plan: sizes differ by at most one, earlier ranks larger.
    public static func balanced(total: Int, parts: Int) -> ShardPlan {
        ShardPlan(total: total, parts: parts, layout: .balanced)
    }

    /// A padded plan: equal shards, each a multiple of `alignment`.
    public static func padded(total: Int, parts: Int, alignment: Int = 1) -> ShardPlan {
        ShardPlan(total: total, parts: parts, layout: .padded(alignment: alignment))
    }

    /// The shard of `rank` in the (padded) buffer. Requires `0 <= rank < parts`.
    public func range(of rank: Int) -> Range<Int> {
        precondition((0..<parts).contains(rank), "ShardPlan: rank \(rank) not in 0..<\(parts)")
        return offsets[rank]..<offsets[rank] + counts[rank]
    }

    /// The part of `rank`'s shard that holds real elements (`range(of:)` clamped to `0..<total`); empty
    /// for a shard made only of padding.
    public func validRange(of rank: Int) -> Range<Int> {
        range(of: rank).clamped(to: 0..<total)
    }

    /// The rank whose shard contains `index` (`0 <= index < paddedTotal`).
    public func owner(of index: Int) -> Int {
        precondition((0..<paddedTotal).contains(index), "ShardPlan: index \(index) not in 0..<\(paddedTotal)")
        // Shards are sorted by offset; the owner is the last non-empty shard starting at or before index.
        var low = 0
        var high = parts - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if offsets[mid] <= index { low = mid } else { high = mid - 1 }
        }
        while counts[low] == 0 { low -= 1 }
        return low
    }

    public var description: String {
        "ShardPlan(total: \(total), parts: \(parts), layout: \(layout), counts: \(counts))"
    }
}
