/// Element types Subspace reads and writes in safetensors files (the format's own spelling).
public enum DType: String, Sendable, CaseIterable, Codable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"

    public var byteSize: Int {
        switch self {
        case .f32, .i32: 4
        case .f16, .bf16: 2
        case .i64: 8
        }
    }

    public var isFloatingPoint: Bool { self == .f32 || self == .f16 || self == .bf16 }
}

/// Conversions between float32 and the 16-bit float formats of checkpoints.
public enum HalfPrecision {
    /// bfloat16 is the top half of a float32.
    @inlinable public static func float(fromBF16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Round to nearest even; NaN stays a (quiet) NaN.
    @inlinable public static func bf16(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        let rounding = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    @inlinable public static func float(fromF16 bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    /// IEEE half, round to nearest even (overflow goes to infinity).
    @inlinable public static func f16(from value: Float) -> UInt16 {
        Float16(value).bitPattern
    }
}
