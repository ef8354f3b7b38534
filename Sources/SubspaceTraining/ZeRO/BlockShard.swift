import Foundation
import SubspaceDistributed
import SubspaceModel

/// How one block of the parameter layout is split over the ranks, and which of its elements train.
///
/// Every rank owns one contiguous range of the block (balanced). Communication of gradients and
/// updated parameters carries only the trainable elements ("packed": the trainable tensors' elements in
/// layout order, frozen tensors and padding left out). Because owner ranges are contiguous and packing
/// keeps order, rank r's trainable elements are one contiguous run of the packed block, of length
/// `packedCounts[r]` — exactly what an uneven reduce-scatter or all-gather needs.
struct BlockShard {
    /// The block in the flat buffer (global offsets).
    let range: Range<Int>
    /// Per rank, its part of the block (global offsets).
    let owned: [Range<Int>]
    /// Trainable tensors' ranges in the block (global offsets), with their weight-decay flag.
    let segments: [(range: Range<Int>, decay: Bool)]
    /// Trainable elements inside each rank's owned range.
    let packedCounts: [Int]

    var packedCount: Int { packedCounts.reduce(0, +) }
    var count: Int { range.count }

    init(range: Range<Int>, entries: [LayoutEntry], trainable: (LayoutEntry) -> Bool, ranks: Int) {
        self.range = range
        let plan = ShardPlan.balanced(total: range.count, parts: ranks)
        let owned = (0..<ranks).map { r in
            let local = plan.range(of: r)
            return (range.lowerBound + local.lowerBound)..<(range.lowerBound + local.upperBound)
        }
        // A tensor cut into vocabulary slices contributes the part in this block.
        let segments = entries.filter(trainable).map { (range: $0.range.clamped(to: range), decay: $0.shape.count >= 2) }
            .filter { !$0.range.isEmpty }
        self.owned = owned
        self.segments = segments
        packedCounts = owned.map { o in segments.reduce(0) { $0 + $1.range.clamped(to: o).count } }
    }

    /// Trainable ranges (global) inside rank r's part, with decay flags, in order.
    func segments(ownedBy r: Int) -> [(range: Range<Int>, decay: Bool)] {
        segments.compactMap { s in
            let c = s.range.clamped(to: owned[r])
            return c.isEmpty ? nil : (c, s.decay)
        }
    }

    /// Copies the trainable elements of `blockBase` (block-local addressing) within `window` (global)
    /// into `packed`, in order. Returns the count.
    @discardableResult
    func pack(from blockBase: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>, window: Range<Int>? = nil) -> Int {
        var n = 0
        for s in segments {
            let c = window.map { s.range.clamped(to: $0) } ?? s.range
            if c.isEmpty { continue }
            (packed + n).update(from: blockBase + (c.lowerBound - range.lowerBound), count: c.count)
            n += c.count
        }
        return n
    }

    /// `pack` of the whole block into its own first elements (the rest is left as it was): packing
    /// only moves elements towards the front, so it needs no second buffer.
    func packInPlace(_ blockBase: UnsafeMutablePointer<Float>) {
        var n = 0
        for s in segments {
            let from = s.range.lowerBound - range.lowerBound
            if from != n { memmove(blockBase + n, blockBase + from, s.range.count * MemoryLayout<Float>.stride) }
            n += s.range.count
        }
    }

    /// The inverse of `pack`.
    func unpack(_ packed: UnsafePointer<Float>, into blockBase: UnsafeMutablePointer<Float>, window: Range<Int>? = nil) {
        var n = 0
        for s in segments {
            let c = window.map { s.range.clamped(to: $0) } ?? s.range
            if c.isEmpty { continue }
            (blockBase + (c.lowerBound - range.lowerBound)).update(from: packed + n, count: c.count)
            n += c.count
        }
    }
}
