import Foundation

/// How `Split` (and the pre-tokenizers built on it) treats the matches: HF's `SplitDelimiterBehavior`.
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    /// The pieces of `0..<length` given the pattern's matches (sorted, non-overlapping), as HF's
    /// `NormalizedString::split` cuts them; empty pieces are dropped.
    func pieces(length: Int, matches: [Range<Int>], invert: Bool) -> [Range<Int>] {
        // Tile the text into (range, isMatch).
        var tiles: [(Range<Int>, Bool)] = []
        var previous = 0
        for m in matches {
            if m.lowerBound != previous { tiles.append((previous..<m.lowerBound, invert)) }
            tiles.append((m, !invert))
            previous = m.upperBound
        }
        if previous != length { tiles.append((previous..<length, invert)) }
        var out: [Range<Int>] = []
        switch self {
        case .removed:
            out = tiles.filter { !$0.1 }.map(\.0)
        case .isolated:
            out = tiles.map(\.0)
        case .mergedWithPrevious:
            var previousMatch = false
            for (range, isMatch) in tiles {
                if isMatch && !previousMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<range.upperBound
                } else {
                    out.append(range)
                }
                previousMatch = isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for (range, isMatch) in tiles.reversed() {
                if isMatch && !previousMatch, let last = out.last {
                    out[out.count - 1] = range.lowerBound..<last.upperBound
                } else {
                    out.append(range)
                }
                previousMatch = isMatch
            }
            out.reverse()
        case .contiguous:
            var previousMatch = false
            for (range, isMatch) in tiles {
                if isMatch == previousMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<range.upperBound
                } else {
                    out.append(range)
                }
                previousMatch = isMatch
            }
        }
        return out.filter { !$0.isEmpty }
    }
}

/// The `pre_tokenizer` of a `tokenizer.json` as a list of steps, each cutting every piece of the previous
/// one further (HF's `Sequence`).
///
/// Supported: `ByteLevel` (with or without its regex and prefix space), `Split` (literal or regex, every
/// `behavior`, `invert`), `Metaspace` (`prepend_scheme` always / first / never, `split`), `Digits`,
/// `WhitespaceSplit`, `Sequence`. Anything else is refused, naming the component.
struct PreTokenizerPipeline: Sendable {
    enum PrependScheme: String, Sendable { case always, first, never }

    enum Step: Sendable {
        case split(SplitPattern, SplitBehavior, invert: Bool)
        case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
        case metaspace(replacement: [UInt8], PrependScheme, split: Bool)
        case digits(individual: Bool)
        case whitespaceSplit
    }

    /// A piece being cut: its bytes, and whether it starts at the beginning of the whole input (where
    /// Metaspace's `first` scheme prepends).
    struct Piece {
        var bytes: [UInt8]
        var atOrigin: Bool
    }

    let steps: [Step]
    /// Whether a ByteLevel step maps the text to the byte alphabet (the BPE model then works on bytes).
    let isByteLevel: Bool
    /// When the steps amount to "the matches of one text-tiling pattern are the pieces" (Qwen2, Llama-3,
    /// GPT-2 shapes): that pattern. Encoding then cuts pieces in place without copying.
    let tilingPattern: SplitPattern?
    /// When the steps amount to "the whole stretch is one piece".
    let isWholeStretch: Bool

    init(steps: [Step]) {
        self.steps = steps
        isByteLevel = steps.contains { if case .byteLevel = $0 { return true }; return false }
        // Steps that leave a piece as it is in the byte domain: ByteLevel without prefix space or regex.
        let effective = steps.filter { if case .byteLevel(false, false) = $0 { return false }; return true }
        if effective.count == 1, case .split(let p, .isolated, false) = effective[0], p.tilesText {
            tilingPattern = p
        } else if effective.count == 1, case .byteLevel(false, true) = effective[0] {
            tilingPattern = try? SplitPattern(.regex(SplitPattern.gpt2Pattern), fail: { _ in TokenizerError.unknownID(0, vocabularySize: 0) })
        } else {
            tilingPattern = nil
        }
        isWholeStretch = effective.isEmpty
    }

    init(_ reader: ComponentReader?) throws {
        var steps: [Step] = []
        if let reader { try Self.collect(reader, into: &steps) }
        self.init(steps: steps)
    }

    private static func collect(_ r: ComponentReader, into steps: inout [Step]) throws {
        switch r.value.type {
        case "Sequence":
            for child in try r.children("pretokenizers") { try collect(child, into: &steps) }
        case "ByteLevel":
            steps.append(.byteLevel(addPrefixSpace: try r.bool("add_prefix_space", default: true),
                                    useRegex: try r.bool("use_regex", default: true)))
        case "Split":
            let pattern = try SplitPattern(try r.pattern(), fail: { r.fail($0) })
            let name = try r.string("behavior")
            guard let behavior = SplitBehavior(rawValue: name) else { throw r.fail("behavior '\(name)' is not known") }
            steps.append(.split(pattern, behavior, invert: try r.bool("invert", default: false)))
        case "Metaspace":
            let replacement = try r.string("replacement", default: "▁")
            guard replacement.unicodeScalars.count == 1 else { throw r.fail("replacement '\(replacement)' is not one character") }
            var scheme = PrependScheme.always
            if let name = r.value["prepend_scheme"]?.string {
                guard let s = PrependScheme(rawValue: name) else { throw r.fail("prepend_scheme '\(name)' is not known") }
                scheme = s
            } else if let add = r.value["add_prefix_space"]?.bool {
                scheme = add ? .always : .never
            }
            steps.append(.metaspace(replacement: Array(replacement.utf8), scheme, split: try r.bool("split", default: true)))
        case "Digits":
            steps.append(.digits(individual: try r.bool("individual_digits", default: false)))
        case "WhitespaceSplit":
            steps.append(.whitespaceSplit)
        default:
            throw r.fail("this pre-tokenizer is not supported (supported: ByteLevel, Split, Metaspace, Digits, WhitespaceSplit, Sequence)")
        }
    }

    /// The pieces of one stretch of normalized text.
    func pieces(_ bytes: [UInt8], atOrigin: Bool) -> [[UInt8]] {
        var pieces = [Piece(bytes: bytes, atOrigin: atOrigin)]
        for step in steps {
            var next: [Piece] = []
            next.reserveCapacity(pieces.count)
            for piece in pieces { apply(step, to: piece, into: &next) }
            pieces = next
        }
        return pieces.map(\.bytes).filter { !$0.isEmpty }
    }

    private func apply(_ step: Step, to piece: Piece, into out: inout [Piece]) {
        func cut(_ bytes: [UInt8], atOrigin: Bool, _ ranges: [Range<Int>]) {
            for r in ranges { out.append(Piece(bytes: Array(bytes[r]), atOrigin: atOrigin && r.lowerBound == 0)) }
        }
        switch step {
        case .split(let pattern, let behavior, let invert):
            let matches = piece.bytes.withUnsafeBufferPointer { pattern.matches(in: $0) }
            cut(piece.bytes, atOrigin: piece.atOrigin, behavior.pieces(length: piece.bytes.count, matches: matches, invert: invert))
        case .byteLevel(let addPrefixSpace, let useRegex):
            var bytes = piece.bytes
            if addPrefixSpace && bytes.first != 0x20 { bytes.insert(0x20, at: 0) }
            if useRegex {
                let ranges = bytes.withUnsafeBufferPointer { b -> [Range<Int>] in
                    var ranges: [Range<Int>] = []
                    GPT2PreTokenizer.forEachPiece(b) { ranges.append($0) }
                    return ranges
                }
                cut(bytes, atOrigin: piece.atOrigin, ranges)
            } else {
                out.append(Piece(bytes: bytes, atOrigin: piece.atOrigin))
            }
        case .metaspace(let replacement, let scheme, let split):
            var bytes: [UInt8] = []
            bytes.reserveCapacity(piece.bytes.count + 3)
            for b in piece.bytes { if b == 0x20 { bytes += replacement } else { bytes.append(b) } }
            let startsWithReplacement = bytes.starts(with: replacement)
            if !startsWithReplacement && (scheme == .always || (scheme == .first && piece.atOrigin)) {
                bytes = replacement + bytes
            }
            if split {
                let matches = Self.scalarMatches(bytes) { s in Array(String(s).utf8) == replacement }
                cut(bytes, atOrigin: piece.atOrigin, SplitBehavior.mergedWithNext.pieces(length: bytes.count, matches: matches, invert: false))
            } else {
                out.append(Piece(bytes: bytes, atOrigin: piece.atOrigin))
            }
        case .digits(let individual):
            let matches = Self.scalarMatches(piece.bytes) { s in
                switch s.properties.generalCategory {
                case .decimalNumber, .letterNumber, .otherNumber: true
                default: false
                }
            }
            cut(piece.bytes, atOrigin: piece.atOrigin,
                (individual ? SplitBehavior.isolated : .contiguous).pieces(length: piece.bytes.count, matches: matches, invert: false))
        case .whitespaceSplit:
            let matches = Self.scalarMatches(piece.bytes) { $0.properties.isWhitespace }
            cut(piece.bytes, atOrigin: piece.atOrigin, SplitBehavior.removed.pieces(length: piece.bytes.count, matches: matches, invert: false))
        }
    }

    /// One single-scalar match per scalar of `bytes` for which `test` holds.
    static func scalarMatches(_ bytes: [UInt8], _ test: (Unicode.Scalar) -> Bool) -> [Range<Int>] {
        var matches: [Range<Int>] = []
        var offset = 0
        for s in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            let length = UTF8.width(s)
            if test(s) { matches.append(offset..<(offset + length)) }
            offset += length
        }
        return matches
    }
}
