import Foundation

/// The `decoder` of a `tokenizer.json`: steps applied in order to the list of token strings (kept as UTF-8
/// bytes), whose results are then concatenated — HF's `decode_chain`.
///
/// Supported: `ByteLevel`, `Metaspace`, `Replace`, `ByteFallback`, `Fuse`, `Strip`, `Sequence`. Anything
/// else is refused, naming the component.
///
/// `exact` decoding reproduces HF's text: ByteFallback turns a run of `<0x..>` tokens that is not valid
/// UTF-8 into one U+FFFD per token, and ByteLevel decodes lossily. Raw decoding keeps those bytes as they
/// are, which is what streaming output needs (a character split over two generated tokens).
struct TokenDecoderPipeline: Sendable {
    enum Step: Sendable {
        case byteLevel
        case metaspace(replacement: [UInt8], prependsSpace: Bool)
        case replace(SplitPattern, with: [UInt8])
        case byteFallback
        case fuse
        case strip(content: [UInt8], start: Int, stop: Int)
    }

    let steps: [Step]

    init(steps: [Step]) { self.steps = steps }

    /// Whether the decoder is just `ByteLevel` (the GPT-2 shape).
    var isByteLevelOnly: Bool { steps.count == 1 && { if case .byteLevel = steps[0] { return true }; return false }() }

    init(_ reader: ComponentReader) throws {
        var steps: [Step] = []
        try Self.collect(reader, into: &steps)
        self.steps = steps
    }

    private static func collect(_ r: ComponentReader, into steps: inout [Step]) throws {
        switch r.value.type {
        case "Sequence": for child in try r.children("decoders") { try collect(child, into: &steps) }
        case "ByteLevel": steps.append(.byteLevel)
        case "Metaspace":
            let replacement = try r.string("replacement", default: "▁")
            var prepends = true
            if let scheme = r.value["prepend_scheme"]?.string { prepends = scheme != "never" }
            else if let add = r.value["add_prefix_space"]?.bool { prepends = add }
            steps.append(.metaspace(replacement: Array(replacement.utf8), prependsSpace: prepends))
        case "Replace":
            let pattern = try SplitPattern(try r.pattern(), fail: { r.fail($0) })
            steps.append(.replace(pattern, with: Array(try r.string("content").utf8)))
        case "ByteFallback": steps.append(.byteFallback)
        case "Fuse": steps.append(.fuse)
        case "Strip":
            let content = try r.string("content")
            guard content.unicodeScalars.count == 1 else { throw r.fail("content '\(content)' is not one character") }
            steps.append(.strip(content: Array(content.utf8), start: try r.int("start", default: 0), stop: try r.int("stop", default: 0)))
        default:
            throw r.fail("this decoder is not supported (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)")
        }
    }

    func decode(_ input: [[UInt8]], exact: Bool) -> [UInt8] {
        var tokens = input
        for step in steps {
            switch step {
            case .byteLevel:
                var bytes: [UInt8] = []
                for t in tokens {
                    let s = String(decoding: t, as: UTF8.self)
                    bytes += ByteLevelAlphabet.decode(s) ?? t
                }
                tokens = [exact ? Array(String(decoding: bytes, as: UTF8.self).utf8) : bytes]
            case .metaspace(let replacement, let prependsSpace):
                tokens = tokens.enumerated().map { i, t in
                    Self.replacing(t, replacement, with: i == 0 && prependsSpace ? [] : [0x20])
                }
            case .replace(let pattern, let content):
                tokens = tokens.map { t in
                    let matches = t.withUnsafeBufferPointer { pattern.matches(in: $0) }
                    if matches.isEmpty { return t }
                    var out: [UInt8] = [], last = 0
                    for m in matches { out += t[last..<m.lowerBound]; out += content; last = m.upperBound }
                    return out + t[last...]
                }
            case .byteFallback:
                var out: [[UInt8]] = [], pending: [UInt8] = []
                func flush() {
                    if pending.isEmpty { return }
                    if !exact || String(validating: pending, as: UTF8.self) != nil {
                        out.append(pending)
                    } else {
                        for _ in pending { out.append(Array("\u{FFFD}".utf8)) }
                    }
                    pending.removeAll()
                }
                for t in tokens {
                    if let byte = Self.fallbackByte(t) { pending.append(byte) } else { flush(); out.append(t) }
                }
                flush()
                tokens = out
            case .fuse:
                tokens = [tokens.flatMap { $0 }]
            case .strip(let content, let start, let stop):
                tokens = tokens.map { t in
                    var a = 0, b = t.count
                    for _ in 0..<start { if b - a >= content.count, Array(t[a..<(a + content.count)]) == content { a += content.count } else { break } }
                    for _ in 0..<stop { if b - a >= content.count, Array(t[(b - content.count)..<b]) == content { b -= content.count } else { break } }
                    return Array(t[a..<b])
                }
            }
        }
        return tokens.flatMap { $0 }
    }

    /// The byte of a `<0xAB>` token.
    static func fallbackByte(_ t: [UInt8]) -> UInt8? {
        guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E else { return nil }
        return UInt8(String(decoding: t[3..<5], as: UTF8.self), radix: 16)
    }

    static func replacing(_ t: [UInt8], _ needle: [UInt8], with content: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        out.reserveCapacity(t.count)
        while i < t.count {
            if i + needle.count <= t.count, t[i] == needle[0], Array(t[i..<(i + needle.count)]) == needle {
                out += content
                i += needle.count
            } else {
                out.append(t[i])
                i += 1
            }
        }
        return out
    }
}

/// The `post_processor` of a `tokenizer.json` for a single sequence: the special tokens placed before and
/// after the ids when encoding with special tokens (HF's `add_special_tokens=True`).
///
/// Supported: `TemplateProcessing` (its `single` template), `ByteLevel` (no ids), `RobertaProcessing` and
/// `BertProcessing` (`cls` … `sep`), `Sequence`. Anything else is refused, naming the component.
public struct TemplatePostProcessor: Sendable, Equatable {
    /// Ids before the text's (Llama's BOS).
    public var prefix: [Int] = []
    /// Ids after the text's.
    public var suffix: [Int] = []

    init() {}

    init(_ r: ComponentReader) throws {
        switch r.value.type {
        case "ByteLevel": break
        case "Sequence":
            for child in try r.children("processors") {
                let inner = try TemplatePostProcessor(child)
                prefix = inner.prefix + prefix
                suffix += inner.suffix
            }
        case "RobertaProcessing", "BertProcessing":
            guard let cls = r.value["cls"]?.array, cls.count == 2, let clsID = cls[1].int,
                  let sep = r.value["sep"]?.array, sep.count == 2, let sepID = sep[1].int
            else { throw r.field("'cls' or 'sep' is not [token, id]") }
            prefix = [clsID]
            suffix = [sepID]
        case "TemplateProcessing":
            guard let single = r.value["single"]?.array else { throw r.field("'single' is missing or not a list") }
            var seenSequence = false
            for item in single {
                if item["Sequence"] != nil { seenSequence = true; continue }
                guard let name = item["SpecialToken"]?["id"]?.string else { throw r.field("a 'single' item is neither Sequence nor SpecialToken") }
                guard let ids = r.value["special_tokens"]?[name]?["ids"]?.array?.compactMap(\.int) else {
                    throw r.field("special token '\(name)' has no ids in 'special_tokens'")
                }
                if seenSequence { suffix += ids } else { prefix += ids }
            }
        default:
            throw r.fail("this post-processor is not supported (supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)")
        }
    }
}
