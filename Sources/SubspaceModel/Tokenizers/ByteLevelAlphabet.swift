/// GPT-2's reversible map from bytes to printable characters (`bytes_to_unicode` in OpenAI's encoder.py,
/// `ByteLevel` in HF tokenizers): the 188 bytes that are printable Latin-1 (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stand
/// for themselves, the other 68 (controls, space, soft hyphen, …) are shifted to U+0100 and up in byte order,
/// so space is `Ġ` (U+0120) and newline `Ċ` (U+010A). Byte-level BPE vocabularies are written in this
/// alphabet.
public enum ByteLevelAlphabet {
    /// The character standing for each byte, indexed by byte.
    public static let characters: [Unicode.Scalar] = {
        var printable = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { printable[b] = true }
        for b in 0xA1...0xAC { printable[b] = true }
        for b in 0xAE...0xFF { printable[b] = true }
        var result = [Unicode.Scalar](repeating: "\0", count: 256)
        var shifted: UInt32 = 256
        for b in 0..<256 {
            if printable[b] {
                result[b] = Unicode.Scalar(UInt8(b))
            } else {
                result[b] = Unicode.Scalar(shifted)!
                shifted += 1
            }
        }
        return result
    }()

    /// The byte a character stands for, nil for characters outside the alphabet.
    public static func byte(for character: Unicode.Scalar) -> UInt8? {
        let v = character.value
        if v < 256 {
            let b = UInt8(v)
            return characters[Int(b)] == character ? b : nil
        }
        return byteOfShifted.indices.contains(Int(v) - 256) ? byteOfShifted[Int(v) - 256] : nil
    }

    /// Bytes → their byte-level string, e.g. `" the"` → `"Ġthe"`.
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(characters[Int(b)]) }
        return String(s)
    }

    /// A byte-level string → its bytes, nil if a character is outside the alphabet.
    public static func decode(_ string: String) -> [UInt8]? {
        var bytes = [UInt8]()
        bytes.reserveCapacity(string.unicodeScalars.count)
        for scalar in string.unicodeScalars {
            guard let b = byte(for: scalar) else { return nil }
            bytes.append(b)
        }
        return bytes
    }

    /// Bytes of the shifted characters U+0100… in order.
    private static let byteOfShifted: [UInt8] = (0..<256).compactMap { b in
        characters[b].value >= 256 ? UInt8(b) : nil
    }
}
