import Foundation

/// Pre-token bytes → their BPE ids, for one encoding session (one thread).
///
/// Natural text repeats a small set of words, so after a warm-up nearly every pre-token is a hit and
/// encoding costs a hash and a compare per piece. Keys and values live in two arenas, so a hit allocates
/// nothing and an insert appends. Bounded: only pieces up to `maximumKeyLength` bytes are kept, and the
/// table starts over once it holds `maximumEntries`.
struct PreTokenCache {
    static let maximumKeyLength = 64
    static let maximumEntries = 1 << 19

    private struct Entry {
        var hash: UInt64
        var keyStart: Int32
        var keyLength: Int32
        var valueStart: Int32
        var valueLength: Int32
    }

    private var slots: [Int32]
    private var entries: [Entry] = []
    private var keyBytes: [UInt8] = []
    private var values: [Int32] = []

    init() { slots = [Int32](repeating: -1, count: 1024) }

    /// FNV-1a over the bytes, 64-bit.
    @inline(__always)
    static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in key { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    /// Appends the cached ids of `key` to `output` and returns true, or returns false on a miss.
    @inline(__always)
    func appendIDs(of key: UnsafeBufferPointer<UInt8>, hash: UInt64, to output: inout [Int]) -> Bool {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        return slots.withUnsafeBufferPointer { slots in
            entries.withUnsafeBufferPointer { entries in
                while true {
                    let e = Int(slots[i])
                    if e < 0 { return false }
                    let entry = entries[e]
                    if entry.hash == hash && Int(entry.keyLength) == key.count {
                        // A byte loop: keys are a few bytes long, too short for memcmp's call to pay off.
                        let same = keyBytes.withUnsafeBufferPointer { stored in
                            var j = 0, base = Int(entry.keyStart)
                            while j < key.count && stored[base] == key[j] { j += 1; base += 1 }
                            return j == key.count
                        }
                        if same {
                            values.withUnsafeBufferPointer { v in
                                for j in Int(entry.valueStart)..<Int(entry.valueStart + entry.valueLength) {
                                    output.append(Int(v[j]))
                                }
                            }
                            return true
                        }
                    }
                    i = (i + 1) & mask
                }
            }
        }
    }

    /// Remembers `ids` for `key` (which must not be cached yet).
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, hash: UInt64, ids: ArraySlice<Int32>) {
        guard key.count <= Self.maximumKeyLength, key.count > 0 else { return }
        if entries.count >= Self.maximumEntries {
            entries.removeAll(keepingCapacity: true)
            keyBytes.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            for i in slots.indices { slots[i] = -1 }
        }
        if 2 * (entries.count + 1) > slots.count { grow() }
        let entry = Entry(hash: hash, keyStart: Int32(keyBytes.count), keyLength: Int32(key.count),
                          valueStart: Int32(values.count), valueLength: Int32(ids.count))
        keyBytes.append(contentsOf: key)
        values.append(contentsOf: ids)
        place(Int32(entries.count), hash: hash)
        entries.append(entry)
    }

    private mutating func place(_ entry: Int32, hash: UInt64) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = entry
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        for (e, entry) in entries.enumerated() { place(Int32(e), hash: entry.hash) }
    }
}
