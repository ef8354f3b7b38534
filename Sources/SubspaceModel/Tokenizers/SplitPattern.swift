import Foundation

/// What a `Split` pre-tokenizer, a `Replace` normalizer or a `Replace` decoder matches: a literal string or a
/// regular expression.
///
/// Regular expressions run on ICU (`NSRegularExpression`), which has the Unicode classes (`\p{L}`, `\p{N}`),
/// `\s` as the Unicode White_Space property, case-insensitive groups and lookahead that HF's Oniguruma
/// patterns use. Three patterns that real vocabularies ship are recognised by their exact text and matched
/// by hand instead, several times faster (`QwenPreTokenizer`, `GPT2PreTokenizer`): GPT-2's, Qwen2's and
/// Llama-3's. Those three match every position, so their matches tile the text (`tilesText`).
struct SplitPattern: @unchecked Sendable {
    enum Source: Sendable, Equatable {
        case literal(String)
        case regex(String)
    }

    enum Engine {
        case literal([UInt8])
        case gpt2
        /// Qwen2 (`\p{N}`, one digit per piece) and Llama-3 (`\p{N}{1,3}`).
        case qwen(maximumDigits: Int)
        case icu(NSRegularExpression)
    }

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    let source: Source
    let engine: Engine

    /// Compiles `source`; `fail` makes the error for a pattern ICU rejects.
    init(_ source: Source, fail: (String) -> Error) throws {
        self.source = source
        switch source {
        case .literal(let s):
            guard !s.isEmpty else { throw fail("an empty pattern") }
            engine = .literal(Array(s.utf8))
        case .regex(let r):
            switch r {
            case Self.gpt2Pattern: engine = .gpt2
            case Self.qwen2Pattern: engine = .qwen(maximumDigits: 1)
            case Self.llama3Pattern: engine = .qwen(maximumDigits: 3)
            default:
                do {
                    engine = .icu(try NSRegularExpression(pattern: r, options: []))
                } catch {
                    throw fail("the regex \(r.debugDescription) cannot be compiled: \(error)")
                }
            }
        }
    }

    /// `pattern` on ICU even where a hand-written matcher exists (tests compare the two).
    init(icu pattern: String) throws {
        source = .regex(pattern)
        engine = .icu(try NSRegularExpression(pattern: pattern, options: []))
    }

    /// Whether the matches cover every byte of any text (no gaps): true for the hand-matched patterns.
    var tilesText: Bool {
        switch engine {
        case .gpt2, .qwen: true
        default: false
        }
    }

    /// For a pattern that tiles the text: calls `body` with each match's byte range, in order. The engine
    /// is chosen once, not per piece.
    @inline(__always)
    func forEachTile(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
        switch engine {
        case .gpt2: GPT2PreTokenizer.forEachPiece(bytes, body)
        case .qwen(let digits): QwenPreTokenizer.forEachPiece(bytes, maximumDigits: digits, body)
        default: preconditionFailure("forEachTile on a pattern that does not tile the text")
        }
    }

    /// The non-overlapping matches in `bytes`, left to right (leftmost-first, as Oniguruma finds them),
    /// as byte ranges. Empty matches are skipped.
    func matches(in bytes: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        var found: [Range<Int>] = []
        switch engine {
        case .gpt2, .qwen:
            forEachTile(bytes) { found.append($0) }
        case .literal(let needle):
            let n = needle.count
            var i = 0
            while i + n <= bytes.count {
                var same = true
                for j in 0..<n where bytes[i + j] != needle[j] { same = false; break }
                if same { found.append(i..<(i + n)); i += n } else { i += 1 }
            }
        case .icu(let regex):
            let text = String(decoding: bytes, as: UTF8.self)
            let ns = text as NSString
            // UTF-16 offsets → UTF-8 offsets through the string's indices.
            let utf16 = text.utf16
            for m in regex.matches(in: text, options: [], range: NSRange(location: 0, length: ns.length)) where m.range.length > 0 {
                let lower = utf16.index(utf16.startIndex, offsetBy: m.range.location)
                let upper = utf16.index(lower, offsetBy: m.range.length)
                let a = text.utf8.distance(from: text.utf8.startIndex, to: lower)
                let b = text.utf8.distance(from: text.utf8.startIndex, to: upper)
                found.append(a..<b)
            }
        }
        return found
    }
}

/// Qwen2's and Llama-3's pre-tokenization, written out by hand over UTF-8 bytes: the pieces of
///
///     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
///
/// (k = 1 for Qwen2, 3 for Llama-3), leftmost-first as Oniguruma matches it. With the scalar classes of
/// `GPT2PreTokenizer` (letter, number, whitespace, other), at each position the first alternative that
/// matches decides:
/// 1. `'` then `s t m d`, `re ve ll` in either case (and `ſ`, which folds to `s`).
/// 2. A letter run, optionally after one scalar that is neither a letter, a number, `\r` nor `\n`.
/// 3. Up to k numbers.
/// 4. An optional U+0020, a run of others, then any `\r`/`\n` run.
/// 5. A whitespace run containing `\r` or `\n`: up to and including its last `\r`/`\n` (`\s*` backtracks).
/// 6. A whitespace run at the end of the text, or one of two or more scalars before a non-space, less its
///    last scalar (`\s+(?!\S)`).
/// 7. The whitespace run (`\s+`: a single space before a non-space).
/// Every position matches, so the pieces tile the text, and nothing looks behind its start.
enum QwenPreTokenizer {
    // Computed, not stored: a stored static initialised from another is read through `swift_once`.
    static var letter: UInt8 { GPT2PreTokenizer.letter }
    static var number: UInt8 { GPT2PreTokenizer.number }
    static var space: UInt8 { GPT2PreTokenizer.space }
    static var other: UInt8 { GPT2PreTokenizer.other }

    /// Calls `body` with each piece's byte range, in order (the pieces tile `bytes`).
    @inline(__always)
    static func forEachPiece(_ bytes: UnsafeBufferPointer<UInt8>, maximumDigits: Int, _ body: (Range<Int>) -> Void) {
        let table = GPT2PreTokenizer.classTable
        var start = 0
        while start < bytes.count {
            let end = pieceEnd(bytes, from: start, maximumDigits: maximumDigits, table)
            body(start..<end)
            start = end
        }
    }

    /// The end of the piece that starts at `start` (< `bytes.count`); `table`: `GPT2PreTokenizer.classTable`.
    @inline(__always)
    static func pieceEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, maximumDigits: Int,
                         _ table: UnsafePointer<UInt8>) -> Int {
        let n = bytes.count
        let first = bytes[start]
        // 1. Contractions, case-insensitive.
        if first == 0x27, start + 1 < n {
            switch bytes[start + 1] | 0x20 {
            case 0x73, 0x74, 0x6D, 0x64: return start + 2  // s t m d
            case 0x72, 0x76: if start + 2 < n, bytes[start + 2] | 0x20 == 0x65 { return start + 3 }  // re ve
            case 0x6C: if start + 2 < n, bytes[start + 2] | 0x20 == 0x6C { return start + 3 }  // ll
            case 0xE5: if bytes[start + 1] == 0xC5, start + 2 < n, bytes[start + 2] == 0xBF { return start + 3 }  // 'ſ
            default: break
            }
        }
        let (kind, length) = GPT2PreTokenizer.scalarClass(bytes, start, table)
        // 2. `[^\r\n\p{L}\p{N}]?\p{L}+`
        if kind == letter { return run(of: letter, bytes, from: start + length, table) }
        if kind != number && first != 0x0D && first != 0x0A, start + length < n {
            let (next, nextLength) = GPT2PreTokenizer.scalarClass(bytes, start + length, table)
            if next == letter { return run(of: letter, bytes, from: start + length + nextLength, table) }
        }
        // 3. `\p{N}{1,k}`
        if kind == number {
            var i = start + length, count = 1
            while count < maximumDigits && i < n {
                let (k, l) = GPT2PreTokenizer.scalarClass(bytes, i, table)
                if k != number { break }
                i += l
                count += 1
            }
            return i
        }
        // 4. ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var otherStart = -1
        if kind == other { otherStart = start }
        else if first == 0x20, start + 1 < n, GPT2PreTokenizer.scalarClass(bytes, start + 1, table).0 == other { otherStart = start + 1 }
        if otherStart >= 0 {
            var i = run(of: other, bytes, from: otherStart, table)
            while i < n && (bytes[i] == 0x0D || bytes[i] == 0x0A) { i += 1 }
            return i
        }
        // 5–7: a whitespace run.
        var i = start, lastBreak = -1, lastScalar = start
        while i < n {
            let (k, l) = GPT2PreTokenizer.scalarClass(bytes, i, table)
            if k != space { break }
            if bytes[i] == 0x0A || bytes[i] == 0x0D { lastBreak = i }
            lastScalar = i
            i += l
        }
        if lastBreak >= 0 { return lastBreak + 1 }
        if i == n { return i }
        return lastScalar > start ? lastScalar : i
    }

    @inline(__always)
    static func run(of kind: UInt8, _ bytes: UnsafeBufferPointer<UInt8>, from start: Int, _ table: UnsafePointer<UInt8>) -> Int {
        var i = start
        let n = bytes.count
        // ASCII first: most runs are plain letters, one table read per byte.
        while i < n, bytes[i] < 0x80, table[Int(bytes[i])] == kind { i += 1 }
        while i < n {
            let (k, l) = GPT2PreTokenizer.scalarClass(bytes, i, table)
            if k != kind { break }
            i += l
        }
        return i
    }
}
