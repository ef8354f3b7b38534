#if canImport(Glibc)
import Glibc
#endif

/// Heap storage for tensors: one 64-byte-aligned allocation of `Float`s, freed with the last reference.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let capacity: Int

    /// A zero-filled allocation of `capacity` floats.
    public init(capacity: Int) {
        precondition(capacity >= 0, "negative capacity \(capacity)")
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(capacity, 1) * MemoryLayout<Float>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(capacity, 1))
        pointer.initialize(repeating: 0, count: max(capacity, 1))
        self.capacity = capacity
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// Fills with zeros and tells the kernel the pages may be dropped, so memory no longer used (e.g. a
    /// full parameter copy once ZeRO-3 holds shards) stops counting as resident until touched again.
    public func discard() {
        pointer.update(repeating: 0, count: capacity)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: pointer) + page - 1) / page * page
        let end = (Int(bitPattern: pointer) + capacity * MemoryLayout<Float>.stride) / page * page
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
    }
}

/// A dense, row-major float32 tensor with value semantics.
///
/// A tensor is a window (`offset`, `shape`) onto a `TensorStorage`. `view(offset:shape:)` makes a window
/// onto the same storage without copying, which is how slices of a flat parameter buffer are read.
/// Writing through a tensor whose storage is shared copies its window first (copy-on-write), so a view
/// never changes the tensor it came from; to write into part of a flat buffer in place, use
/// `withMutableSlice(offset:count:_:)` on the owner.
public struct Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    public private(set) var offset: Int
    @usableFromInline var storage: TensorStorage

    /// Number of elements.
    public var count: Int { Tensor.elementCount(shape) }
    public var rank: Int { shape.count }

    public static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.offset = 0
        self.storage = TensorStorage(capacity: Tensor.elementCount(shape))
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public init(shape: [Int], values: [Float]) {
        precondition(Tensor.elementCount(shape) == values.count,
                     "shape \(shape) holds \(Tensor.elementCount(shape)) values, got \(values.count)")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { src in
            storage.pointer.update(from: src.baseAddress!, count: src.count)
        }
    }

    /// A tensor filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(zeros: shape)
        storage.pointer.update(repeating: value, count: count)
    }

    /// A tensor filled by `body`, which writes every one of the `count` elements.
    public init(shape: [Int], initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        self.init(zeros: shape)
        try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// A tensor over `shape`'s elements of `storage` starting at `offset`, sharing it (no copy): the
    /// way an owner of a flat buffer hands out read views. Writing through the tensor copies first.
    public init(viewing storage: TensorStorage, offset: Int = 0, shape: [Int]) {
        precondition(offset >= 0 && offset + Tensor.elementCount(shape) <= storage.capacity,
                     "view [\(offset), \(offset + Tensor.elementCount(shape))) outside storage of \(storage.capacity)")
        self.storage = storage
        self.offset = offset
        self.shape = shape
    }

    /// A window onto the same storage: `shape`'s elements starting `offset` elements into this tensor.
    public func view(offset viewOffset: Int, shape viewShape: [Int]) -> Tensor {
        let n = Tensor.elementCount(viewShape)
        precondition(viewOffset >= 0 && viewOffset + n <= count,
                     "view [\(viewOffset), \(viewOffset + n)) outside a tensor of \(count) elements")
        var t = self
        t.offset = offset + viewOffset
        t.shape = viewShape
        return t
    }

    /// The same elements under another shape with the same element count (no copy).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(Tensor.elementCount(newShape) == count, "cannot reshape \(shape) to \(newShape)")
        var t = self
        t.shape = newShape
        return t
    }

    /// Row `i` of the leading dimension, as a view.
    public subscript(row i: Int) -> Tensor {
        precondition(rank >= 1 && i >= 0 && i < shape[0], "row \(i) outside shape \(shape)")
        let inner = Array(shape.dropFirst())
        return view(offset: i * Tensor.elementCount(inner), shape: inner)
    }

    /// Element access by flat (row-major) index.
    public subscript(flat i: Int) -> Float {
        get {
            precondition(i >= 0 && i < count, "index \(i) outside \(count) elements")
            return storage.pointer[offset + i]
        }
        set {
            precondition(i >= 0 && i < count, "index \(i) outside \(count) elements")
            makeUnique()
            storage.pointer[offset + i] = newValue
        }
    }

    /// Element access by multi-index.
    public subscript(_ index: Int...) -> Float {
        get { self[flat: flatIndex(index)] }
        set { self[flat: flatIndex(index)] = newValue }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) for shape \(shape)")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index \(index) outside shape \(shape)")
            flat = flat * d + i
        }
        return flat
    }

    /// The elements as an array (row-major).
    public var scalars: [Float] { withUnsafeBufferPointer { Array($0) } }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeBufferPointer(start: storage.pointer + offset, count: count))
        }
    }

    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try withExtendedLifetime(storage) {
            try body(UnsafeMutableBufferPointer(start: storage.pointer + offset, count: count))
        }
    }

    /// In-place access to `count` elements starting at `offset` of this tensor (e.g. one layer's slice
    /// of a flat parameter buffer).
    public mutating func withMutableSlice<R>(
        offset sliceOffset: Int, count sliceCount: Int,
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        precondition(sliceOffset >= 0 && sliceCount >= 0 && sliceOffset + sliceCount <= count,
                     "slice [\(sliceOffset), \(sliceOffset + sliceCount)) outside \(count) elements")
        return try withUnsafeMutableBufferPointer { all in
            try body(UnsafeMutableBufferPointer(rebasing: all[sliceOffset..<(sliceOffset + sliceCount)]))
        }
    }

    /// Copies the window into storage of its own when the storage is shared (copy-on-write).
    @usableFromInline mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            let fresh = TensorStorage(capacity: count)
            fresh.pointer.update(from: storage.pointer + offset, count: count)
            storage = fresh
            offset = 0
        }
    }
}

extension Tensor: Equatable {
    /// Same shape and bit-for-bit equal elements.
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        return lhs.withUnsafeBufferPointer { a in
            rhs.withUnsafeBufferPointer { b in
                memcmp(a.baseAddress!, b.baseAddress!, a.count * MemoryLayout<Float>.stride) == 0
            }
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(\(shape): [\(head)\(count > 8 ? ", …" : "")])"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
