/// Element-wise reduction loops over raw memory, shared by the in-process communicator and the
/// shared-memory all-reduce.
///
/// They dispatch once per call on the element kind and operation, so each inner loop is a concrete,
/// vectorisable loop rather than a generic one calling through a witness table per element.
enum ReductionKernels {
    /// `destination[i] = a[i] op b[i]` for `i < count`. `destination` may be the same memory as `a` or
    /// `b` (each element is read before it is written) but must not overlap them at an offset.
    static func combine(
        _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, into destination: UnsafeMutableRawPointer,
        count: Int, kind: CollectiveElementKind, op: ReduceOp
    ) {
        guard count > 0 else { return }
        switch kind {
        case .float32: floating(Float.self, a, b, destination, count, op)
        case .float64: floating(Double.self, a, b, destination, count, op)
        case .int32: integer(Int32.self, a, b, destination, count, op)
        case .int64: integer(Int64.self, a, b, destination, count, op)
        case .uint8: integer(UInt8.self, a, b, destination, count, op)
        }
    }

    /// `destination[i] = destination[i] op source[i]` for `i < count`.
    static func accumulate(
        _ source: UnsafeRawPointer, into destination: UnsafeMutableRawPointer,
        count: Int, kind: CollectiveElementKind, op: ReduceOp
    ) {
        combine(UnsafeRawPointer(destination), source, into: destination, count: count, kind: kind, op: op)
    }

    /// `destination = sources[0] op sources[1] op …`, combined left to right (rank order), so the result
    /// is the same wherever it is computed. With one source this is a copy.
    static func reduce(
        _ sources: [UnsafeRawPointer], into destination: UnsafeMutableRawPointer,
        count: Int, kind: CollectiveElementKind, op: ReduceOp
    ) {
        guard count > 0, let first = sources.first else { return }
        if sources.count == 1 {
            destination.copyMemory(from: first, byteCount: count * kind.byteCount)
            return
        }
        combine(first, sources[1], into: destination, count: count, kind: kind, op: op)
        for source in sources.dropFirst(2) {
            accumulate(source, into: destination, count: count, kind: kind, op: op)
        }
    }

    @inline(__always)
    private static func loop<T>(
        _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: UnsafeMutableRawPointer, _ count: Int,
        _ f: (T, T) -> T
    ) {
        let x = a.assumingMemoryBound(to: T.self)
        let y = b.assumingMemoryBound(to: T.self)
        let z = d.assumingMemoryBound(to: T.self)
        for i in 0..<count { z[i] = f(x[i], y[i]) }
    }

    private static func floating<T: BinaryFloatingPoint>(
        _: T.Type, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: UnsafeMutableRawPointer,
        _ count: Int, _ op: ReduceOp
    ) {
        switch op {
        case .sum: loop(a, b, d, count) { (x: T, y: T) in x + y }
        case .max: loop(a, b, d, count) { (x: T, y: T) in x > y ? x : y }
        case .min: loop(a, b, d, count) { (x: T, y: T) in x < y ? x : y }
        }
    }

    private static func integer<T: FixedWidthInteger>(
        _: T.Type, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: UnsafeMutableRawPointer,
        _ count: Int, _ op: ReduceOp
    ) {
        switch op {
        // Wrapping, as MPI's integer sums are.
        case .sum: loop(a, b, d, count) { (x: T, y: T) in x &+ y }
        case .max: loop(a, b, d, count) { (x: T, y: T) in x > y ? x : y }
        case .min: loop(a, b, d, count) { (x: T, y: T) in x < y ? x : y }
        }
    }
}
