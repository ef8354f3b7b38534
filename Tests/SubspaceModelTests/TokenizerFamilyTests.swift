import Foundation
import Testing
@testable import SubspaceModel

/// Tests against the references `Resources/tokenizers/make_references.py` wrote with HF `tokenizers` and
/// `transformers` for the Qwen2, Llama-3, Llama-2 and other tokenizer.json shapes.
enum TokenizerResources {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Resources/tokenizers").path

    static func path(_ family: String, _ file: String = "") -> String {
        file.isEmpty ? folder + "/" + family : folder + "/" + family + "/" + file
    }

    static func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    /// `../shared/fixtures` beside the checkout, or `$SUBSPACE_FIXTURES`.
    static func fixture(_ name: String) -> String {
        if let env = ProcessInfo.processInfo.environment["SUBSPACE_FIXTURES"] { return env + "/" + name }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("shared/fixtures/" + name).path
    }

    static func fnv1a(_ ids: [Int]) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in ids.map(String.init).joined(separator: ",").utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

@Suite struct TokenizerFamilyTests {
    static let families = ["qwen2", "llama3", "llama2", "misc"]

    @Test(arguments: families)
    func samplesEncodeAndDecodeAsHF(family: String) throws {
        let t = try BPETokenizer(contentsOfFile: TokenizerResources.path(family, "tokenizer.json"))
        let reference = try TokenizerResources.json(TokenizerResources.path(family, "references.json"))
        for sample in reference["samples"] as! [[String: Any]] {
            let text = sample["text"] as! String
            let ids = t.encode(text)
            #expect(ids == sample["ids"] as! [Int], "\(family) \(text.debugDescription)")
            #expect(t.encode(text, addingSpecialTokens: true) == sample["ids_with_special_tokens"] as! [Int],
                    "\(family) \(text.debugDescription) with special tokens")
            let expectedIDs = sample["ids"] as! [Int]
            #expect(try t.decode(expectedIDs) == sample["decoded"] as! String, "\(family) decode \(text.debugDescription)")
            #expect(try t.decode(expectedIDs, skippingSpecialTokens: true) == sample["decoded_skipping_special"] as! String,
                    "\(family) decode skipping special \(text.debugDescription)")
        }
    }

    @Test(arguments: families)
    func longTextEncodesIdForId(family: String) throws {
        let t = try BPETokenizer(contentsOfFile: TokenizerResources.path(family, "tokenizer.json"))
        let reference = try TokenizerResources.json(TokenizerResources.path(family, "references.json"))["long_text"] as! [String: Any]
        let text = try String(contentsOfFile: TokenizerResources.fixture(reference["fixture"] as! String), encoding: .utf8)
        let ids = t.encode(text)
        let first = reference["first_ids"] as! [Int]
        let difference = zip(ids, first).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(difference == nil, "\(family): first difference at \(String(describing: difference))")
        #expect(ids.count == reference["count"] as! Int)
        #expect(TokenizerResources.fnv1a(ids) == reference["fnv1a64_of_comma_joined_ids"] as! String)
        // Cut into many parts where the pre-tokenizer allows it, the ids are the same.
        #expect(t.encode(text, threads: 4, minimumBytes: 4096) == ids)
        if reference["decode_round_trip"] as! Bool { #expect(try t.decode(ids) == text) }
    }

    @Test func splitBehavioursMatchHF() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: TokenizerResources.folder + "/pretokenizers.json"))
        let cases = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
        #expect(cases.count > 100)
        for c in cases {
            let source: SplitPattern.Source = (c["regex"] as! Bool) ? .regex(c["pattern"] as! String) : .literal(c["pattern"] as! String)
            let pattern = try SplitPattern(source, fail: { _ in TokenizerError.unknownID(0, vocabularySize: 0) })
            let behaviour = SplitBehavior(rawValue: {
                switch c["behavior"] as! String {
                case "removed": "Removed"
                case "isolated": "Isolated"
                case "merged_with_previous": "MergedWithPrevious"
                case "merged_with_next": "MergedWithNext"
                default: "Contiguous"
                }
            }())!
            let pre = PreTokenizerPipeline(steps: [.split(pattern, behaviour, invert: c["invert"] as! Bool)])
            let text = c["text"] as! String
            let pieces = pre.pieces(Array(text.utf8), atOrigin: true).map { String(decoding: $0, as: UTF8.self) }
            #expect(pieces == c["pieces"] as! [String], "\(c["pattern"]!) \(c["behavior"]!) invert \(c["invert"]!) on \(text.debugDescription)")
        }
    }

    @Test func handWrittenPatternsAgreeWithICU() throws {
        // The hand-written Qwen2 / Llama-3 matchers against ICU running the same regex.
        let texts = try (TokenizerResources.json(TokenizerResources.path("qwen2", "references.json"))["samples"] as! [[String: Any]])
            .map { $0["text"] as! String } + ["x'S 'ſ 'Re\r\n\r\n  \n\t\tz", "  \u{00A0}a", "1234567 ab12cd", "?!\n\n\nA", " \r\n\r\n"]
        for pattern in [SplitPattern.qwen2Pattern, SplitPattern.llama3Pattern, SplitPattern.gpt2Pattern] {
            let fast = try SplitPattern(.regex(pattern), fail: { _ in TokenizerError.unknownID(0, vocabularySize: 0) })
            let icu = try SplitPattern(icu: pattern)
            for text in texts {
                let bytes = Array(text.utf8)
                let a = bytes.withUnsafeBufferPointer { fast.matches(in: $0) }
                let b = bytes.withUnsafeBufferPointer { icu.matches(in: $0) }
                #expect(a == b, "\(pattern.prefix(20)) on \(text.debugDescription)")
            }
        }
    }

    @Test func segmentWiseNormalizationEqualsWholeText() {
        // NFC/NFKC/NFD/NFKD applied to the non-ASCII runs (with the ASCII character before each) equal the
        // form of the whole text: marks that compose with an ASCII letter (e + U+0301), reordering of mark
        // runs, Hangul jamo, compatibility characters, curly quotes, CJK, emoji, runs at either end.
        let alphabet: [String] = ["a", "e", " ", "\n", "'", "1", "\u{0301}", "\u{0323}", "\u{0308}", "é", "ñ", "\u{2019}", "\u{2014}",
                                  "\u{1100}", "\u{1161}", "\u{11A8}", "\u{AC00}", "ﬁ", "\u{2460}", "中", "\u{FF21}", "😀",
                                  "\u{212B}", "\u{0344}", "\u{1E9B}", "\u{0F73}", "x", "A"]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) % n }
        let forms: [(String, (String) -> String)] = [("NFC", { $0.precomposedStringWithCanonicalMapping }),
                                                     ("NFKC", { $0.precomposedStringWithCompatibilityMapping }),
                                                     ("NFD", { $0.decomposedStringWithCanonicalMapping }),
                                                     ("NFKD", { $0.decomposedStringWithCompatibilityMapping })]
        for _ in 0..<400 {
            let text = (0..<(1 + next(24))).map { _ in alphabet[next(alphabet.count)] }.joined()
            for (name, form) in forms {
                let expected = Array(form(text).utf8)
                #expect(TextNormalizer.normalizedSegments(Array(text.utf8), form) == expected, "\(name) of \(text.debugDescription)")
            }
            let nfcSkipping = TextNormalizer.normalizedSegments(Array(text.utf8), skip: { !TextNormalizer.mayChangeUnderComposition($0) }) {
                $0.precomposedStringWithCanonicalMapping
            }
            #expect(nfcSkipping == Array(forms[0].1(text).utf8), "NFC (quick check) of \(text.debugDescription)")
        }
    }

    @Test func unsupportedComponentsAreRefusedByName() throws {
        let base = try TokenizerResources.json(TokenizerResources.path("qwen2", "tokenizer.json"))
        func failure(_ key: String, _ value: Any) -> TokenizerFileError? {
            var edited = base
            edited[key] = value
            do {
                _ = try BPETokenizer(json: try JSONSerialization.data(withJSONObject: edited), file: "edited.json")
                return nil
            } catch let error as TokenizerFileError { return error } catch { return nil }
        }
        let normalizer = failure("normalizer", ["type": "Sequence", "normalizers": [["type": "NFC"], ["type": "BertNormalizer"]]])
        #expect(normalizer?.kind == .unsupported)
        #expect(normalizer?.reason.contains("normalizer.normalizers[1] (BertNormalizer)") == true)
        #expect(failure("pre_tokenizer", ["type": "Whitespace"])?.reason.contains("pre_tokenizer (Whitespace)") == true)
        #expect(failure("decoder", ["type": "WordPiece"])?.reason.contains("decoder (WordPiece)") == true)
        #expect(failure("post_processor", ["type": "Unknown"])?.reason.contains("post_processor (Unknown)") == true)
        let badRegex = failure("pre_tokenizer", ["type": "Split", "pattern": ["Regex": "(unclosed"], "behavior": "Isolated"])
        #expect(badRegex?.kind == .unsupported)
    }
}
