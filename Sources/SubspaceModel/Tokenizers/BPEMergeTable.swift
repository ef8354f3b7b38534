/// The merges of a BPE model as an open-addressing hash table: (left id, right id) packed into one UInt64
/// → (rank, merged id). A merge's rank is its index in the file; lower ranks merge first.
///
/// Written out rather than a `Dictionary<UInt64, …>` because the merge loop does one look-up per adjacent
/// pair per step, and a multiplicative hash with linear probing is several times cheaper than SipHash.
struct BPEMergeTable: Sendable {
    private static let empty = UInt64.max
    private var keys: [UInt64]
    /// rank << 32 | merged id.
    private var values: [UInt64]
    private var shift: UInt64
    private(set) var count = 0

    init(minimumCapacity: Int) {
        var capacity = 16
        while capacity < 2 * max(1, minimumCapacity) { capacity *= 2 }
        keys = [UInt64](repeating: Self.empty, count: capacity)
        values = [UInt64](repeating: 0, count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
    }

    @inline(__always)
    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// Sets the merge of `left right`, replacing an earlier one (HF keeps the last duplicate too).
    mutating func insert(_ left: Int32, _ right: Int32, rank: Int32, merged: Int32) {
        let k = Self.key(left, right)
        let mask = keys.count - 1
        var i = slot(k)
        while keys[i] != Self.empty && keys[i] != k { i = (i + 1) & mask }
        if keys[i] == Self.empty { count += 1 }
        keys[i] = k
        values[i] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged))
    }

    /// The rank and merged id of `left right`, or nil when the pair does not merge.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> (rank: Int32, merged: Int32)? {
        let k = Self.key(left, right)
        let mask = keys.count - 1
        var i = slot(k)
        return keys.withUnsafeBufferPointer { keys in
            while true {
                let found = keys[i]
                if found == k {
                    let v = values[i]
                    return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v))
                }
                if found == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }
}
