import Foundation

/// Finds added tokens in raw UTF-8 as HF's `AddedVocabulary` does: leftmost-longest non-overlapping
/// matches (its Aho-Corasick automaton), a `single_word` match discarded when a word character (letter,
/// number or `_`) touches it, `lstrip`/`rstrip` widening the match over adjacent whitespace.
///
/// Candidates are indexed by first byte, so text without any token's first byte costs one table read
/// per byte; fine for the handful of special tokens GPT-style vocabularies have.
struct AddedTokenMatcher: Sendable {
    struct Pattern: Sendable {
        var bytes: [UInt8]
        var token: BPETokenizer.AddedToken
    }

    let patterns: [Pattern]
    /// For each first byte, indices into `patterns`, longest first.
    let byFirstByte: [[Int]]
    /// Whether some pattern starts with the byte: the scan's fast path.
    let isFirstByte: [Bool]

    var isEmpty: Bool { patterns.isEmpty }

    init(_ tokens: [BPETokenizer.AddedToken]) {
        let patterns = tokens.filter { !$0.content.isEmpty }.map { Pattern(bytes: Array($0.content.utf8), token: $0) }
        var index = [[Int]](repeating: [], count: 256)
        for (i, p) in patterns.enumerated() { index[Int(p.bytes[0])].append(i) }
        // Longest first; among equal lengths the later entry wins, as later entries of HF's map do.
        byFirstByte = index.map { list in
            list.sorted { a, b in
                let (la, lb) = (patterns[a].bytes.count, patterns[b].bytes.count)
                return la != lb ? la > lb : a > b
            }
        }
        self.patterns = patterns
        isFirstByte = byFirstByte.map { !$0.isEmpty }
    }

    /// Appends the pieces of `bytes[range]` to `pieces`: stretches of text and the added tokens between.
    func split(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into pieces: inout [TextPiece]) {
        var consumed = range.lowerBound
        var i = range.lowerBound
        while i < range.upperBound {
            i = isFirstByte.withUnsafeBufferPointer { isFirst in
                var j = i
                while j < range.upperBound && !isFirst[Int(bytes[j])] { j += 1 }
                return j
            }
            if i == range.upperBound { break }
            let candidates = byFirstByte[Int(bytes[i])]
            var found: Pattern?
            for c in candidates {
                let p = patterns[c]
                if p.bytes.count <= range.upperBound - i,
                   p.bytes.withUnsafeBufferPointer({ memcmp($0.baseAddress!, bytes.baseAddress! + i, $0.count) == 0 }) {
                    found = p
                    break
                }
            }
            guard let match = found else { i += 1; continue }
            var start = i, stop = i + match.bytes.count
            if match.token.singleWord {
                let wordBefore = start > range.lowerBound && Self.isWordCharacter(Self.scalar(before: start, in: bytes).scalar)
                let wordAfter = stop < range.upperBound && Self.isWordCharacter(Self.scalar(at: stop, in: bytes).scalar)
                if wordBefore || wordAfter { i = stop; continue }
            }
            if match.token.stripsLeft {
                while start > consumed {
                    let (s, at) = Self.scalar(before: start, in: bytes)
                    if !s.properties.isWhitespace || at < consumed { break }
                    start = at
                }
            }
            if match.token.stripsRight {
                while stop < range.upperBound {
                    let (s, length) = Self.scalar(at: stop, in: bytes)
                    if !s.properties.isWhitespace { break }
                    stop += length
                }
            }
            if start > consumed { pieces.append(.text(consumed..<start, startsSegment: true)) }
            pieces.append(.added(match.token.id))
            consumed = stop
            i = stop
        }
        if consumed < range.upperBound { pieces.append(.text(consumed..<range.upperBound, startsSegment: true)) }
    }

    static func isWordCharacter(_ s: Unicode.Scalar) -> Bool {
        if s == "_" { return true }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return s.properties.isAlphabetic
        }
    }

    /// The scalar starting at byte `i` and its length.
    static func scalar(at i: Int, in bytes: UnsafeBufferPointer<UInt8>) -> (scalar: Unicode.Scalar, length: Int) {
        let lead = bytes[i]
        let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
        var decoder = UTF8()
        var iterator = UnsafeBufferPointer(rebasing: bytes[i..<min(bytes.count, i + length)]).makeIterator()
        if case .scalarValue(let s) = decoder.decode(&iterator) { return (s, length) }
        return ("\u{FFFD}", 1)
    }

    /// The scalar ending just before byte `i` and where it starts.
    static func scalar(before i: Int, in bytes: UnsafeBufferPointer<UInt8>) -> (scalar: Unicode.Scalar, start: Int) {
        var start = i - 1
        while start > 0 && bytes[start] & 0xC0 == 0x80 { start -= 1 }
        return (scalar(at: start, in: bytes).scalar, start)
    }
}
