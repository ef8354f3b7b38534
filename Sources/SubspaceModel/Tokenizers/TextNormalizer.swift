import Foundation

/// The `normalizer` of a `tokenizer.json`, as a list of steps applied in order to each stretch of text
/// between added tokens (HF normalizes the stretches separately, after cutting out the tokens with
/// `normalized: false`).
///
/// Supported: `NFC`, `NFKC`, `NFD`, `NFKD`, `Lowercase` (per scalar, as Rust's `char::to_lowercase`),
/// `Prepend` (to a non-empty stretch), `Replace` (a literal or a regex, every match), `Strip`, and
/// `Sequence` of these. Anything else is refused, naming the component.
struct TextNormalizer: Sendable {
    enum Step: Sendable {
        case nfc, nfkc, nfd, nfkd
        case lowercase
        case prepend([UInt8])
        case replace(SplitPattern, with: [UInt8])
        case strip(left: Bool, right: Bool)
    }

    let steps: [Step]

    init(_ reader: ComponentReader) throws {
        var steps: [Step] = []
        try Self.collect(reader, into: &steps)
        self.steps = steps
    }

    private static func collect(_ r: ComponentReader, into steps: inout [Step]) throws {
        switch r.value.type {
        case "Sequence": for child in try r.children("normalizers") { try collect(child, into: &steps) }
        case "NFC": steps.append(.nfc)
        case "NFKC": steps.append(.nfkc)
        case "NFD": steps.append(.nfd)
        case "NFKD": steps.append(.nfkd)
        case "Lowercase": steps.append(.lowercase)
        case "Prepend": steps.append(.prepend(Array(try r.string("prepend").utf8)))
        case "Replace":
            let pattern = try SplitPattern(try r.pattern(), fail: { r.fail($0) })
            steps.append(.replace(pattern, with: Array(try r.string("content").utf8)))
        case "Strip":
            steps.append(.strip(left: try r.bool("strip_left", default: true), right: try r.bool("strip_right", default: true)))
        default:
            throw r.fail("this normalizer is not supported (supported: NFC, NFKC, NFD, NFKD, Lowercase, Prepend, Replace, Strip, Sequence)")
        }
    }

    /// Whether the normalizer leaves every text unchanged (no steps).
    var isIdentity: Bool { steps.isEmpty }

    /// The normalized bytes of one stretch of (valid UTF-8) text.
    func apply(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var bytes = Array(input)
        for step in steps {
            switch step {
            case .nfc: bytes = Self.normalizedSegments(bytes, skip: { !Self.mayChangeUnderComposition($0) }) { $0.precomposedStringWithCanonicalMapping }
            case .nfkc: bytes = Self.normalizedSegments(bytes) { $0.precomposedStringWithCompatibilityMapping }
            case .nfd: bytes = Self.normalizedSegments(bytes) { $0.decomposedStringWithCanonicalMapping }
            case .nfkd: bytes = Self.normalizedSegments(bytes) { $0.decomposedStringWithCompatibilityMapping }
            case .lowercase:
                if Self.isASCII(bytes) {
                    for i in bytes.indices where bytes[i] >= 0x41 && bytes[i] <= 0x5A { bytes[i] |= 0x20 }
                } else {
                    var out = String.UnicodeScalarView()
                    for s in Self.string(bytes).unicodeScalars { out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars) }
                    bytes = Array(String(out).utf8)
                }
            case .prepend(let prefix): if !bytes.isEmpty { bytes = prefix + bytes }
            case .replace(let pattern, let content):
                let matches = bytes.withUnsafeBufferPointer { pattern.matches(in: $0) }
                if matches.isEmpty { continue }
                var out: [UInt8] = []
                out.reserveCapacity(bytes.count)
                var last = 0
                for m in matches {
                    out += bytes[last..<m.lowerBound]
                    out += content
                    last = m.upperBound
                }
                out += bytes[last...]
                bytes = out
            case .strip(let left, let right):
                let scalars = Array(Self.string(bytes).unicodeScalars)
                var a = 0, b = scalars.count
                if left { while a < b && scalars[a].properties.isWhitespace { a += 1 } }
                if right { while b > a && scalars[b - 1].properties.isWhitespace { b -= 1 } }
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars[a..<b])
                bytes = Array(String(view).utf8)
            }
        }
        return bytes
    }

    static func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func isASCII(_ bytes: [UInt8]) -> Bool { !bytes.contains { $0 >= 0x80 } }

    /// A normalization form applied segment by segment: every ASCII character is a starter (combining class 0)
    /// that no earlier character composes with (quick-check Yes in all four forms), so UAX #15 allows a cut
    /// before it and the form of the whole is the forms of the pieces joined. A segment is a run of non-ASCII
    /// text with the ASCII character before it (which a following mark may compose with, e + U+0301 → é);
    /// ASCII between segments is copied, and a segment `skip` calls unchanged is too. Only the few segments
    /// with non-ASCII text go through Foundation — the whole text did before, as soon as it held one curly
    /// quote (a third of the encoding time on the plays).
    static func normalizedSegments(_ bytes: [UInt8], skip: ([UInt8]) -> Bool = { _ in false },
                                   _ form: (String) -> String) -> [UInt8] {
        guard let first = bytes.firstIndex(where: { $0 >= 0x80 }) else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 8)
        var copied = 0, i = first
        while i < bytes.count {
            guard bytes[i] >= 0x80 else { i += 1; continue }
            let start = i > 0 ? i - 1 : i  // the ASCII character the run may compose with
            var end = i
            while end < bytes.count && bytes[end] >= 0x80 { end += 1 }
            let segment = Array(bytes[start..<end])
            out += bytes[copied..<start]
            if skip(segment) { out += segment } else { out += Array(form(string(segment)).utf8) }
            copied = end
            i = end
        }
        out += bytes[copied...]
        return out
    }

    /// False when every scalar is below U+0300, or is a CJK ideograph, kana or Hangul syllable (other than
    /// the two composing kana voicing marks): such text is already NFC. A cheap test that spares the
    /// Foundation round trip for most text.
    static func mayChangeUnderComposition(_ bytes: [UInt8]) -> Bool {
        var i = 0
        while i < bytes.count {
            let lead = bytes[i]
            if lead < 0x80 { i += 1; continue }
            if lead < 0xCC { i += 2; continue }  // U+0080 … U+02FF
            if lead >= 0xE0 && lead < 0xF0 && i + 2 < bytes.count {
                let v = Int(lead & 0x0F) << 12 | Int(bytes[i + 1] & 0x3F) << 6 | Int(bytes[i + 2] & 0x3F)
                let composedAlready = (0x3040...0x3098).contains(v) || (0x309B...0x30FF).contains(v)
                    || (0x4E00...0x9FFF).contains(v) || (0xAC00...0xD7A3).contains(v) || (0x3000...0x3029).contains(v)
                    || (0xFF01...0xFF5E).contains(v)
                if composedAlready { i += 3; continue }
            }
            return true
        }
        return false
    }
}
