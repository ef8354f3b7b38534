/// GPT-2's pre-tokenization, written out by hand over UTF-8 bytes: the same pieces as the regex
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// matched leftmost-first as Oniguruma (HF tokenizers) and Python's `regex` (OpenAI's encoder) do. Every
/// scalar falls in exactly one of four classes — letter (`\p{L}`: Lu Ll Lt Lm Lo), number (`\p{N}`: Nd Nl
/// No), whitespace (`\s`: the Unicode White_Space property) or other — so the matches tile the text, and
/// at each position the first alternative that matches decides:
///
/// 1. `'` followed by `s t m d` or `re ve ll` (case-sensitive): the contraction.
/// 2. An optional single U+0020 space, then a maximal run of letters, of numbers, or of others — whichever
///    class the first non-space scalar has. The space is taken only when a non-whitespace scalar follows it.
/// 3. Otherwise a whitespace run. `\s+(?!\S)` makes a run that is followed by a non-whitespace scalar give
///    back its last scalar (which then starts the next piece, e.g. `" word"`); a run of one such scalar, or
///    a run at the end of the text, is taken whole (`\s+`).
///
/// Matching at a position never looks behind it, which is what makes splitting a text at certain line
/// breaks and encoding the parts separately exact (see `BPETokenizer.encode(_:threads:)`).
public enum GPT2PreTokenizer {
    /// The pieces of `text`, in order; they concatenate to `text`.
    public static func split(_ text: String) -> [String] {
        var text = text
        return text.withUTF8 { bytes in
            var pieces: [String] = []
            forEachPiece(bytes) { pieces.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[$0]), as: UTF8.self)) }
            return pieces
        }
    }

    // Scalar classes.
    static let other: UInt8 = 0, letter: UInt8 = 1, number: UInt8 = 2, space: UInt8 = 3

    /// The class of every Basic Multilingual Plane scalar (surrogates: other), built once (~65k property
    /// look-ups, a few milliseconds) so the hot loop does a table read instead.
    static let planeZeroClasses: [UInt8] = (0..<0x10000).map { v in
        Unicode.Scalar(UInt32(v)).map(classify) ?? other
    }

    /// `planeZeroClasses` behind a raw pointer (made once, never freed). The hot loops take it as an
    /// argument: every read of a global goes through a `swift_once` check, which per scalar cost ~5% of
    /// encoding. Never written after it is made, so sharing it between threads is safe.
    nonisolated(unsafe) static let classTable: UnsafePointer<UInt8> = {
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: 0x10000)
        for (v, c) in planeZeroClasses.enumerated() { table[v] = c }
        return UnsafePointer(table)
    }()

    static func classify(_ scalar: Unicode.Scalar) -> UInt8 {
        let properties = scalar.properties
        if properties.isWhitespace { return space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return other
        }
    }

    /// Class and UTF-8 length of the scalar starting at `i` (`bytes` is valid UTF-8). `table`: `classTable`.
    @inline(__always)
    static func scalarClass(_ bytes: UnsafeBufferPointer<UInt8>, _ i: Int, _ table: UnsafePointer<UInt8>) -> (UInt8, Int) {
        let lead = bytes[i]
        if lead < 0x80 { return (table[Int(lead)], 1) }
        if lead < 0xE0 {
            let v = Int(lead & 0x1F) << 6 | Int(bytes[i + 1] & 0x3F)
            return (table[v], 2)
        }
        if lead < 0xF0 {
            let v = Int(lead & 0x0F) << 12 | Int(bytes[i + 1] & 0x3F) << 6 | Int(bytes[i + 2] & 0x3F)
            return (table[v], 3)
        }
        let v = UInt32(lead & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12
            | UInt32(bytes[i + 2] & 0x3F) << 6 | UInt32(bytes[i + 3] & 0x3F)
        return (Unicode.Scalar(v).map(classify) ?? other, 4)
    }

    /// Calls `body` with each piece's byte range, in order (the pieces tile `bytes`).
    @inline(__always)
    static func forEachPiece(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
        let table = classTable
        var start = 0
        while start < bytes.count {
            let end = pieceEnd(bytes, from: start, table)
            body(start..<end)
            start = end
        }
    }

    /// The end (exclusive byte offset) of the piece that starts at `start` (< `bytes.count`); `table`:
    /// `classTable`.
    @inline(__always)
    static func pieceEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, _ table: UnsafePointer<UInt8>) -> Int {
        let n = bytes.count
        let first = bytes[start]
        // 1. Contractions.
        if first == 0x27, start + 1 < n {
            switch bytes[start + 1] {
            case 0x73, 0x74, 0x6D, 0x64: return start + 2  // 's 't 'm 'd
            case 0x72, 0x76: if start + 2 < n, bytes[start + 2] == 0x65 { return start + 3 }  // 're 've
            case 0x6C: if start + 2 < n, bytes[start + 2] == 0x6C { return start + 3 }  // 'll
            default: break
            }
        }
        // 2. ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`.
        var (kind, length) = scalarClass(bytes, start, table)
        var runStart = start
        if first == 0x20, start + 1 < n {
            let (next, nextLength) = scalarClass(bytes, start + 1, table)
            if next != space { (kind, length, runStart) = (next, nextLength, start + 1) }
        }
        if kind != space {
            var i = runStart + length
            while i < n {
                let (k, l) = scalarClass(bytes, i, table)
                if k != kind { break }
                i += l
            }
            return i
        }
        // 3. `\s+(?!\S)`, then `\s+`.
        var i = start + length, last = start
        while i < n {
            let (k, l) = scalarClass(bytes, i, table)
            if k != space { break }
            last = i
            i += l
        }
        return i == n || last == start ? i : last
    }
}
