/// The scalar types that collectives move and reduce, each with a fixed in-memory layout.
///
/// Every implementation maps a kind to its own representation (an MPI datatype, a reduction kernel).
public enum CollectiveElementKind: String, Sendable, CaseIterable {
    case float32, float64, int32, int64, uint8

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .float32, .int32: 4
        case .float64, .int64: 8
        case .uint8: 1
        }
    }
}

/// A scalar type the collectives accept.
///
/// Only the conformances declared in this module (`Float`, `Double`, `Int32`, `Int64`, `UInt8`) are
/// supported: implementations reinterpret buffers according to `collectiveKind`, so a foreign
/// conformance whose layout disagrees with its kind would corrupt memory. Integer sums wrap on
/// overflow, as MPI's do.
public protocol CollectiveElement: BitwiseCopyable, Sendable, Comparable {
    /// The layout and arithmetic this type is reduced with.
    static var collectiveKind: CollectiveElementKind { get }
}

extension Float: CollectiveElement {
    public static var collectiveKind: CollectiveElementKind { .float32 }
}

extension Double: CollectiveElement {
    public static var collectiveKind: CollectiveElementKind { .float64 }
}

extension Int32: CollectiveElement {
    public static var collectiveKind: CollectiveElementKind { .int32 }
}

extension Int64: CollectiveElement {
    public static var collectiveKind: CollectiveElementKind { .int64 }
}

extension UInt8: CollectiveElement {
    public static var collectiveKind: CollectiveElementKind { .uint8 }
}

/// The element-wise reduction an all-reduce or reduce-scatter applies.
public enum ReduceOp: String, Sendable, CaseIterable {
    case sum, max, min
}
