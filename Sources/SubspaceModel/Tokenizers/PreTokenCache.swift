import Foundation

/// Pre-token bytes → their BPE ids, for one encoding session (one thread).
///
/// Natural text repeats a small set of words, so after a warm-up nearly every pre-token is a hit and
/// encoding costs a hash and a compare per piece. The table is open-addressed over 32-byte slots that hold
/// a key of up to 8 bytes and a first id themselves: a hit on a short word with one id (most of them)
/// reads one cache line. Longer keys and the ids of multi-id words live in two arenas. perf showed the
/// earlier layout (an index array → an entry → the key arena → the id arena) spending most of a lookup on
/// those three dependent cache misses. Bounded: only pieces up to `maximumKeyLength` bytes are kept, and
/// the table starts over once it holds `maximumEntries`.
struct PreTokenCache {
    static let maximumKeyLength = 64
    /// Entries kept before the table starts over (2^19 by default: ~16 MB of slots).
    let maximumEntries: Int

    private struct Slot {
        var hash: UInt64 = 0
        /// The key's bytes, little-endian and zero-padded, when it is at most 8 bytes long.
        var shortKey: UInt64 = 0
        /// Where a longer key starts in `keyBytes`.
        var keyStart: Int32 = 0
        /// Where the ids start in `values` when there is more than one.
        var valueStart: Int32 = 0
        var firstValue: Int32 = 0
        /// 0: an empty slot (keys are never empty).
        var keyLength: UInt8 = 0
        var valueLength: UInt8 = 0
    }

    private var slots: [Slot]
    private var count = 0
    private var keyBytes: [UInt8] = []
    private var values: [Int32] = []

    init(maximumEntries: Int = 1 << 19) {
        self.maximumEntries = maximumEntries
        slots = [Slot](repeating: Slot(), count: 1024)
    }

    /// FNV-1a over the bytes, 64-bit.
    @inline(__always)
    static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in key { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    /// The first 8 bytes of `key`, little-endian, zero-padded.
    @inline(__always)
    private static func packed(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var k: UInt64 = 0
        for j in 0..<min(key.count, 8) { k |= UInt64(key[j]) << (8 * UInt64(j)) }
        return k
    }

    /// Appends the cached ids of `key` to `output` and returns true, or returns false on a miss.
    @inline(__always)
    func appendIDs(of key: UnsafeBufferPointer<UInt8>, hash: UInt64, to output: inout [Int]) -> Bool {
        let short = key.count <= 8
        let packedKey = short ? Self.packed(key) : 0
        return slots.withUnsafeBufferPointer { slots in
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: hash) & mask
            while true {
                let slot = slots[i]
                if slot.keyLength == 0 { return false }
                if slot.hash == hash && Int(slot.keyLength) == key.count {
                    let same = short ? slot.shortKey == packedKey : keyBytes.withUnsafeBufferPointer { stored in
                        // A byte loop: keys are a few bytes long, too short for memcmp's call to pay off.
                        var j = 0, base = Int(slot.keyStart)
                        while j < key.count && stored[base] == key[j] { j += 1; base += 1 }
                        return j == key.count
                    }
                    if same {
                        if slot.valueLength == 1 {
                            output.append(Int(slot.firstValue))
                        } else {
                            values.withUnsafeBufferPointer { v in
                                let start = Int(slot.valueStart)
                                for j in start..<(start + Int(slot.valueLength)) { output.append(Int(v[j])) }
                            }
                        }
                        return true
                    }
                }
                i = (i + 1) & mask
            }
        }
    }

    /// Remembers `ids` for `key` (which must not be cached yet).
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, hash: UInt64, ids: ArraySlice<Int32>) {
        guard key.count <= Self.maximumKeyLength, key.count > 0, !ids.isEmpty, ids.count <= Int(UInt8.max) else { return }
        if count >= maximumEntries {
            keyBytes.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            for i in slots.indices { slots[i] = Slot() }
            count = 0
        }
        if 2 * (count + 1) > slots.count { grow() }
        var slot = Slot(hash: hash, keyLength: UInt8(key.count), valueLength: UInt8(ids.count))
        if key.count <= 8 {
            slot.shortKey = Self.packed(key)
        } else {
            slot.keyStart = Int32(keyBytes.count)
            keyBytes.append(contentsOf: key)
        }
        slot.firstValue = ids.first!
        if ids.count > 1 {
            slot.valueStart = Int32(values.count)
            values.append(contentsOf: ids)
        }
        place(slot)
        count += 1
    }

    private mutating func place(_ slot: Slot) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: slot.hash) & mask
        while slots[i].keyLength != 0 { i = (i + 1) & mask }
        slots[i] = slot
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(), count: old.count * 2)
        for slot in old where slot.keyLength != 0 { place(slot) }
    }
}
