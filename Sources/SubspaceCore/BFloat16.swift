/// bfloat16 as raw 16-bit patterns: the top half of an IEEE float32 (sign, 8 exponent bits, 7 stored
/// mantissa bits). Swift has no bf16 type on Linux, and the products that use it (oneDNN) take bits.
///
/// fp32 → bf16 rounds to nearest, ties to even (what PyTorch's `.to(torch.bfloat16)` and oneDNN do);
/// NaN stays a quiet NaN; values that round past the largest finite bf16 become ±infinity.
/// bf16 → fp32 is exact.
public enum BFloat16 {
    @inlinable
    public static func bits(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        let isNaN = u & 0x7FFF_FFFF > 0x7F80_0000
        let rounded = u &+ 0x7FFF &+ ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: isNaN ? (u >> 16) | 0x40 : rounded >> 16)
    }

    @inlinable
    public static func float(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// x rounded to the nearest bf16, as a float.
    @inlinable
    public static func rounded(_ x: Float) -> Float { float(bits(x)) }

    /// dst[i] = bf16(src[i]) for i < count.
    public static func convert(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<UInt16>, count: Int) {
        for i in 0..<count { dst[i] = bits(src[i]) }
    }

    /// A rows × cols block with row strides: dst[r·ldDst + j] = bf16(src[r·ldSrc + j]).
    public static func convert(rows: Int, cols: Int, _ src: UnsafePointer<Float>, ldSrc: Int,
                               to dst: UnsafeMutablePointer<UInt16>, ldDst: Int) {
        for r in 0..<rows { convert(src + r * ldSrc, to: dst + r * ldDst, count: cols) }
    }

    /// dst[i] = Float(src[i]) for i < count.
    public static func expand(_ src: UnsafePointer<UInt16>, to dst: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dst[i] = float(src[i]) }
    }
}
