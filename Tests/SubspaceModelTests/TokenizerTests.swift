import Foundation
import SubspaceCore
import Testing
@testable import SubspaceModel

/// `../shared/fixtures/bpe-tokenizer` beside the checkout, or under `$SUBSPACE_FIXTURES`.
private func bpeFixture(_ name: String) -> String {
    let fixtures: String
    if let env = ProcessInfo.processInfo.environment["SUBSPACE_FIXTURES"] {
        fixtures = env
    } else {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        fixtures = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
    }
    return fixtures + "/bpe-tokenizer/" + name
}

private let fixtureTokenizer: BPETokenizer = try! BPETokenizer(contentsOfFile: bpeFixture("tokenizer.json"))

private func fixtureText(_ name: String) throws -> String {
    try String(contentsOfFile: bpeFixture(name), encoding: .utf8)
}

/// The fixture's tokenizer.json with `edit` applied to its JSON object.
private func editedFixture(_ edit: (inout [String: Any]) -> Void) throws -> BPETokenizer {
    let data = try Data(contentsOf: URL(fileURLWithPath: bpeFixture("tokenizer.json")))
    var root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
    edit(&root)
    return try BPETokenizer(json: try JSONSerialization.data(withJSONObject: root), file: "edited.json")
}

/// A small byte-level tokenizer: the 256 byte symbols, then `extra` tokens, `merges`, `added` tokens.
private func syntheticJSON(extra: [String] = [], merges: [[String]] = [], added: [[String: Any]] = [],
                           model: [String: Any] = [:], preTokenizer: [String: Any] = [:]) -> [String: Any] {
    var vocab: [String: Int] = [:]
    for (b, c) in ByteLevelAlphabet.characters.enumerated() { vocab[String(c)] = b }
    for token in extra where vocab[token] == nil { vocab[token] = vocab.count }
    var modelObject: [String: Any] = ["type": "BPE", "vocab": vocab, "merges": merges]
    modelObject.merge(model) { $1 }
    var pre: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true]
    pre.merge(preTokenizer) { $1 }
    return ["version": "1.0", "added_tokens": added, "normalizer": NSNull(), "pre_tokenizer": pre,
            "decoder": ["type": "ByteLevel"], "model": modelObject]
}

private func synthetic(extra: [String] = [], merges: [[String]] = [], added: [[String: Any]] = [],
                       model: [String: Any] = [:], preTokenizer: [String: Any] = [:]) throws -> BPETokenizer {
    let json = syntheticJSON(extra: extra, merges: merges, added: added, model: model, preTokenizer: preTokenizer)
    return try BPETokenizer(json: try JSONSerialization.data(withJSONObject: json), file: "synthetic.json")
}

/// Byte-level string of plain ASCII/Unicode text (`" the"` → `"Ġthe"`).
private func bl(_ s: String) -> String { ByteLevelAlphabet.encode(Array(s.utf8)) }

@Suite("Tokenizers")
struct TokenizerTests {
    // MARK: Against HF tokenizers (fixtures)

    @Test func loadsTheFixture() throws {
        let t = fixtureTokenizer
        #expect(t.vocabularySize == 512)
        #expect(t.mergeCount == 255)
        #expect(t.endOfText == 0)
        #expect(t.specialTokens == ["<|endoftext|>": 0])
        #expect(t.id(ofSpecialToken: "<|endoftext|>") == 0)
        #expect(!t.addsPrefixSpace)
        #expect(t.id(forToken: "Ġt") != nil)
        #expect(t.token(forID: 0) == "<|endoftext|>")
    }

    @Test func samplesEncodeAndDecodeAsHFDoes() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: bpeFixture("encodings.json")))
        let root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let samples = root["samples"] as! [[String: Any]]
        #expect(samples.count >= 8)
        for sample in samples {
            let text = sample["text"] as! String
            let ids = (sample["ids"] as! [Any]).map { ($0 as! NSNumber).intValue }
            let decoded = sample["decoded"] as! String
            #expect(fixtureTokenizer.encode(text) == ids, "encoding \(text.debugDescription)")
            #expect(try fixtureTokenizer.decode(ids) == decoded, "decoding \(text.debugDescription)")
            #expect(try fixtureTokenizer.decode(fixtureTokenizer.encode(text)) == text)
        }
    }

    @Test func wholePlayMatchesIDForID() throws {
        let text = try fixtureText("long_text.txt")
        let expected = try SafetensorsFile(path: bpeFixture("long_text_ids.safetensors")).integers("ids").values.map(Int.init)
        let ids = fixtureTokenizer.encode(text)
        #expect(ids.count == expected.count)
        let firstDifference = zip(ids, expected).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(firstDifference == nil, "first difference at \(firstDifference.map { "\($0.offset): \($0.element)" } ?? "")")
        #expect(try fixtureTokenizer.decode(ids) == text)
    }

    // MARK: Parallel encoding

    @Test func parallelEncodingEqualsOneShot() throws {
        let play = try fixtureText("long_text.txt")
        let serial = fixtureTokenizer.encode(play)
        for threads in [2, 3, 7, 64] {
            #expect(fixtureTokenizer.encode(play, threads: threads, minimumBytes: 1) == serial, "threads \(threads)")
        }
        // Cut candidates next to every kind of whitespace run, special tokens and a prefix space.
        var tricky = ""
        let fragments = ["a\nb", "x \nY", "x\n\nY", "x\n Y", "x \n\n y", "q\n\t\nz", "é\nb", "b\né", "<|endoftext|>\nk",
                         "k\n<|endoftext|>", "m\n", "\nm", "1\n2", "!\n?", "'s\n's", "  \n", "end.\n", "w\u{3000}\nv"]
        for i in 0..<400 { tricky += fragments[i % fragments.count] + fragments[(i * 7) % fragments.count] }
        let prefixed = try editedFixture { root in
            var pre = root["pre_tokenizer"] as! [String: Any]
            pre["add_prefix_space"] = true
            root["pre_tokenizer"] = pre
        }
        for tokenizer in [fixtureTokenizer, prefixed] {
            let oneShot = tokenizer.encode(tricky)
            for threads in [2, 5, 50, 500] {
                #expect(tokenizer.encode(tricky, threads: threads, minimumBytes: 1) == oneShot, "threads \(threads)")
            }
        }
        var bytes = Array(tricky.utf8)
        let parts = bytes.withUnsafeMutableBufferPointer {
            fixtureTokenizer.parallelParts(UnsafeBufferPointer($0), threads: 50, minimumBytes: 1)
        }
        #expect(parts.count > 20, "the tricky text should be cut into many parts, got \(parts.count)")
    }

    @Test func encodesAFile() throws {
        let ids = try fixtureTokenizer.encode(contentsOfFile: bpeFixture("long_text.txt"), threads: 2)
        #expect(ids == fixtureTokenizer.encode(try fixtureText("long_text.txt")))
        #expect(throws: TokenizerFileError.self) { try fixtureTokenizer.encode(contentsOfFile: "/nonexistent/file.txt") }
    }

    // MARK: Special and added tokens

    @Test func specialTokensAreCutOutOfTheText() throws {
        let t = fixtureTokenizer
        #expect(t.encode("<|endoftext|>") == [0])
        #expect(t.encode("a<|endoftext|>b") == t.encode("a") + [0] + t.encode("b"))
        #expect(t.encode("one.<|endoftext|><|endoftext|> two") == t.encode("one.") + [0, 0] + t.encode(" two"))
        #expect(t.encode("<|endoftext") == t.encode("<|") + t.encode("endoftext"))
        let ids = t.encode("end<|endoftext|>start")
        #expect(try t.decode(ids) == "end<|endoftext|>start")
        #expect(try t.decode(ids, skippingSpecialTokens: true) == "endstart")
    }

    @Test func prefixSpaceIsAddedPerSegment() throws {
        let plain = fixtureTokenizer
        let prefixed = try editedFixture { root in
            var pre = root["pre_tokenizer"] as! [String: Any]
            pre["add_prefix_space"] = true
            root["pre_tokenizer"] = pre
        }
        #expect(prefixed.addsPrefixSpace)
        #expect(prefixed.encode("Hello world") == plain.encode(" Hello world"))
        #expect(prefixed.encode(" Hello") == plain.encode(" Hello"))
        #expect(prefixed.encode("") == [])
        #expect(prefixed.encode("a<|endoftext|>b") == plain.encode(" a") + [0] + plain.encode(" b"))
        #expect(prefixed.preTokenize("to be") == [" to", " be"])
    }

    @Test func addedTokenOptions() throws {
        let added: [[String: Any]] = [
            ["id": 300, "content": "[SEP]", "special": true, "lstrip": true, "rstrip": true, "single_word": false, "normalized": false],
            ["id": 301, "content": "cat", "special": false, "single_word": true, "lstrip": false, "rstrip": false, "normalized": true],
            ["id": 302, "content": "<x>", "special": true, "normalized": false],
            ["id": 303, "content": "<x>>", "special": true, "normalized": false],
        ]
        let t = try synthetic(added: added)
        let bytes = { (s: String) in s.utf8.map(Int.init) }
        #expect(t.vocabularySize == 304)
        #expect(t.specialTokens == ["[SEP]": 300, "<x>": 302, "<x>>": 303])
        // lstrip/rstrip swallow the whitespace around the token.
        #expect(t.encode("a \t[SEP]  b") == bytes("a") + [300] + bytes("b"))
        // single_word: only where no word character touches it.
        #expect(t.encode("a cat!") == bytes("a ") + [301] + bytes("!"))
        #expect(t.encode("cats") == bytes("cats"))
        #expect(t.encode("_cat") == bytes("_cat"))
        // Leftmost-longest.
        #expect(t.encode("<x>>") == [303])
        #expect(t.encode("<x>a") == [302] + bytes("a"))
        #expect(try t.decode([302, 301]) == "<x>cat")
        #expect(try t.decode([302, 301, 97], skippingSpecialTokens: true) == "cata")
    }

    // MARK: BPE details

    @Test func mergesAsStringsOrPairsAgree() throws {
        let asStrings = try editedFixture { root in
            var model = root["model"] as! [String: Any]
            model["merges"] = (model["merges"] as! [[String]]).map { $0.joined(separator: " ") }
            root["model"] = model
        }
        let text = try fixtureText("long_text.txt")
        #expect(asStrings.encode(text) == fixtureTokenizer.encode(text))
    }

    @Test func mergesRunByRankLeftmostFirst() throws {
        // Ranks: "b c" before "a b", so "abc" → a + bc; "aaa" merges the leftmost pair first.
        let t = try synthetic(extra: ["bc", "ab", "aa", "aab"], merges: [["b", "c"], ["a", "b"], ["a", "a"], ["aa", "b"]])
        let id = { (s: String) in t.id(forToken: s)! }
        #expect(t.encode("abc") == [id("a"), id("bc")])
        #expect(t.encode("ab") == [id("ab")])
        #expect(t.encode("aaa") == [id("aa"), id("a")])
        #expect(t.encode("aab") == [id("a"), id("ab")])
        #expect(t.encode("aaaa") == [id("aa"), id("aa")])
    }

    @Test func ignoreMergesTakesWholeVocabularyPieces() throws {
        let merges = [["a", "b"]]
        let withMerges = try synthetic(extra: ["ab", "abc"], merges: merges)
        let ignoring = try synthetic(extra: ["ab", "abc"], merges: merges, model: ["ignore_merges": true])
        #expect(ignoring.ignoresMerges)
        #expect(withMerges.encode("abc") == [withMerges.id(forToken: "ab")!, Int(Character("c").asciiValue!)])
        #expect(ignoring.encode("abc") == [ignoring.id(forToken: "abc")!])
        #expect(ignoring.encode("abcd") == withMerges.encode("abcd"))
    }

    @Test func longPiecesMergeAsShortOnesDo() throws {
        // The heap merge (long pieces) against the linear one, on the fixture's merges.
        let play = try fixtureText("long_text.txt")
        var generator = RandomStream(seed: 7)
        var encoder = BPEEncoder(fixtureTokenizer)
        let scalars = Array(play.unicodeScalars)
        for length in [2, 3, 17, 129, 400, 2000] {
            for _ in 0..<20 {
                let start = Int.random(in: 0..<(scalars.count - length), using: &generator)
                var s = String.UnicodeScalarView()
                s.append(contentsOf: scalars[start..<(start + length)])
                let bytes = Array(String(s).utf8)
                bytes.withUnsafeBufferPointer { piece in
                    encoder.symbols.removeAll()
                    encoder.initialSymbols(piece)
                    encoder.mergeLinear()
                    let linear = encoder.symbols
                    encoder.symbols.removeAll()
                    encoder.initialSymbols(piece)
                    encoder.mergeWithHeap()
                    #expect(encoder.symbols == linear, "piece of \(length) bytes at \(start)")
                }
            }
        }
        // A piece past the linear limit goes through the whole encoder too: 3000 letters, no spaces.
        let long = String(repeating: "thereupon", count: 333)
        #expect(try fixtureTokenizer.decode(fixtureTokenizer.encode(long)) == long)
        let withoutRegex = try editedFixture { root in
            var pre = root["pre_tokenizer"] as! [String: Any]
            pre["use_regex"] = false
            root["pre_tokenizer"] = pre
        }
        let sample = String(play.prefix(5000))
        #expect(try withoutRegex.decode(withoutRegex.encode(sample)) == sample)
    }

    @Test func missingByteSymbolsFallBackToUnknown() throws {
        var json = syntheticJSON(extra: ["<unk>"], model: ["unk_token": "<unk>", "fuse_unk": true])
        var model = json["model"] as! [String: Any]
        var vocab = model["vocab"] as! [String: Int]
        vocab[String(ByteLevelAlphabet.characters[0xC3])] = nil  // lead byte of é
        vocab[String(ByteLevelAlphabet.characters[0xA9])] = nil  // its continuation byte
        model["vocab"] = vocab
        json["model"] = model
        let t = try BPETokenizer(json: try JSONSerialization.data(withJSONObject: json))
        let unk = t.id(forToken: "<unk>")!
        #expect(t.encode("café") == [99, 97, 102, unk])  // the two missing bytes fuse into one <unk>

        // byte_fallback: the UTF-8 of the missing byte's character (0xC3 is "Ã", C3 83), as HF does.
        var fallbackJSON = syntheticJSON(extra: ["<0xC3>", "<0x83>"], model: ["byte_fallback": true])
        var fallbackModel = fallbackJSON["model"] as! [String: Any]
        var fallbackVocab = fallbackModel["vocab"] as! [String: Int]
        fallbackVocab[String(ByteLevelAlphabet.characters[0xC3])] = nil
        fallbackModel["vocab"] = fallbackVocab
        fallbackJSON["model"] = fallbackModel
        let f = try BPETokenizer(json: try JSONSerialization.data(withJSONObject: fallbackJSON))
        #expect(f.encode("é") == [f.id(forToken: "<0xC3>")!, f.id(forToken: "<0x83>")!, 0xA9])
    }

    @Test func randomTextsRoundTripAndSplitConsistently() throws {
        // Checked against Python's `regex` with the GPT-2 pattern and a reference BPE while writing this
        // (20,000 such texts agreed piece for piece and id for id); here, the invariants that need no
        // reference.
        let alphabet = ["a", "Z", "0", "9", " ", "  ", "'", "'s", "'re", "'S", "\n", "\n\n", " \n", "\r\n", "\t", ".", "!?",
                        "*", "<|endoftext|>", "<|", "é", "ß", "日", "🎭", "\u{301}", "\u{A0}", "\u{3000}", "\u{85}", "\u{2028}",
                        "\u{B}", "\u{1C}", "²", "Ⅻ", "—", "“", "the", " the", "\u{FEFF}", "\u{1D400}"]
        var rng = RandomStream(seed: 11)
        for _ in 0..<500 {
            let length = Int.random(in: 0...[5, 40, 300].randomElement(using: &rng)!, using: &rng)
            let text = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            let pieces = GPT2PreTokenizer.split(text)
            #expect(pieces.joined() == text && !pieces.contains(""), "\(text.debugDescription)")
            let ids = fixtureTokenizer.encode(text)
            #expect(try fixtureTokenizer.decode(ids) == text, "\(text.debugDescription)")
            #expect(fixtureTokenizer.encode(text, threads: 7, minimumBytes: 1) == ids, "\(text.debugDescription)")
        }
    }

    // MARK: Pre-tokenizer

    @Test(arguments: [
        ("Hello world", ["Hello", " world"]),
        ("I'll've 's 'S", ["I", "'ll", "'ve", " '", "s", " '", "S"]),
        ("don't we're they've I'm he'd", ["don", "'t", " we", "'re", " they", "'ve", " I", "'m", " he", "'d"]),
        ("'tis", ["'t", "is"]),
        ("x'''s", ["x", "'''", "s"]),
        ("a  b", ["a", " ", " b"]),
        ("a    b", ["a", "   ", " b"]),
        ("trailing  ", ["trailing", "  "]),
        ("end ", ["end", " "]),
        (" ", [" "]),
        ("\n", ["\n"]),
        ("line\nnext", ["line", "\n", "next"]),
        ("a\n\nb", ["a", "\n", "\n", "b"]),
        ("a \nb", ["a", " ", "\n", "b"]),
        ("a\n  b", ["a", "\n ", " b"]),
        ("a \n\n  b", ["a", " \n\n ", " b"]),
        ("tab\tand", ["tab", "\t", "and"]),
        ("x \t y", ["x", " \t", " y"]),
        ("1234 5678", ["1234", " 5678"]),
        ("3.14!", ["3", ".", "14", "!"]),
        ("abc123def", ["abc", "123", "def"]),
        ("²½ Ⅻ", ["²½", " Ⅻ"]),
        ("héllo wörld", ["héllo", " wörld"]),
        ("naïve café", ["naïve", " café"]),
        ("e\u{301}x", ["e", "\u{301}", "x"]),
        ("日本語 テキスト", ["日本語", " テキスト"]),
        ("emoji 🎭🎭 !", ["emoji", " 🎭🎭", " !"]),
        ("wait... what?!", ["wait", "...", " what", "?!"]),
        ("**BOLD**  \nWho", ["**", "BOLD", "**", "  ", "\n", "Who"]),
        (" —“quoted”", [" —“", "quoted", "”"]),
        ("a\u{00A0}b", ["a", "\u{00A0}", "b"]),
        ("a\u{3000}\u{3000}b", ["a", "\u{3000}", "\u{3000}", "b"]),
        ("x\u{85}y", ["x", "\u{85}", "y"]),
        ("", []),
    ] as [(String, [String])])
    func preTokenizerMatchesTheGPT2Regex(text: String, pieces: [String]) {
        #expect(GPT2PreTokenizer.split(text) == pieces)
    }

    // MARK: Byte tokenizer

    @Test func byteTokenizerRoundTrips() throws {
        let t = ByteTokenizer()
        let text = "naïve café — 日本語 🎭\n\ttabs"
        let ids = t.encode(text)
        #expect(ids == text.utf8.map(Int.init))
        #expect(t.vocabularySize == 256 && t.endOfText == nil)
        #expect(try t.decode(ids) == text)
        #expect(try t.decode([0x63, 0xC3]) == "c\u{FFFD}")  // a character cut in half
        #expect(try t.decodeBytes([0xC3]) == [0xC3])
        #expect(throws: TokenizerError.unknownID(256, vocabularySize: 256)) { try t.decode([104, 256]) }
        #expect(throws: TokenizerError.unknownID(-1, vocabularySize: 256)) { try t.decode([-1]) }
    }

    @Test func loadsBySpecifier() throws {
        #expect(try Tokenizers.load("bytes") is ByteTokenizer)
        let folder = (bpeFixture("tokenizer.json") as NSString).deletingLastPathComponent
        let fromFolder = try Tokenizers.load(folder)
        #expect(fromFolder.encode("To be") == fixtureTokenizer.encode("To be"))
    }

    // MARK: Errors

    @Test func decodeRejectsUnknownIDs() throws {
        #expect(throws: TokenizerError.unknownID(512, vocabularySize: 512)) { try fixtureTokenizer.decode([1, 512]) }
        #expect(throws: TokenizerError.unknownID(-3, vocabularySize: 512)) { try fixtureTokenizer.decode([-3]) }
        // A gap in the ids.
        var json = syntheticJSON(added: [["id": 400, "content": "<eot>", "special": true]])
        json["version"] = "1.0"
        let gappy = try BPETokenizer(json: try JSONSerialization.data(withJSONObject: json))
        #expect(gappy.vocabularySize == 401)
        #expect(throws: TokenizerError.unknownID(300, vocabularySize: 401)) { try gappy.decode([300]) }
        #expect(try gappy.decode([400]) == "<eot>")
    }

    @Test func loadingErrorsNameTheFileAndTheProblem() throws {
        func failure(_ body: () throws -> BPETokenizer) -> TokenizerFileError? {
            do { _ = try body(); return nil } catch let error as TokenizerFileError { return error } catch { return nil }
        }
        let missing = failure { try BPETokenizer(contentsOfFile: "/nonexistent/tokenizer.json") }
        #expect(missing?.kind == .io)
        #expect(missing?.description.contains("/nonexistent/tokenizer.json") == true)
        #expect(failure { try BPETokenizer(contentsOfFile: NSTemporaryDirectory()) }?.kind == .io)

        let notJSON = failure { try BPETokenizer(json: Data("{ not json".utf8), file: "broken.json") }
        #expect(notJSON?.kind == .json)
        #expect(notJSON?.file == "broken.json")
        #expect(failure { try BPETokenizer(json: Data("[1, 2]".utf8)) }?.kind == .json)

        func edited(_ edit: (inout [String: Any]) -> Void) -> TokenizerFileError? {
            var json = syntheticJSON(extra: ["ab"], merges: [["a", "b"]])
            edit(&json)
            return failure { try BPETokenizer(json: try JSONSerialization.data(withJSONObject: json), file: "t.json") }
        }
        func setModel(_ key: String, _ value: Any?) -> (inout [String: Any]) -> Void {
            { json in
                var model = json["model"] as! [String: Any]
                model[key] = value
                json["model"] = model
            }
        }
        #expect(edited { _ in } == nil)
        let wordPiece = edited(setModel("type", "WordPiece"))
        #expect(wordPiece?.kind == .unsupported)
        #expect(wordPiece?.description == "t.json: model type 'WordPiece' is not BPE")
        #expect(edited { $0["model"] = nil }?.kind == .field)
        #expect(edited(setModel("vocab", nil))?.kind == .field)
        #expect(edited(setModel("vocab", ["a": "one"]))?.kind == .vocabulary)
        let badMerge = edited(setModel("merges", [["a", "b"], ["zz", "b"]]))
        #expect(badMerge?.kind == .merges)
        #expect(badMerge?.reason.contains("'zz'") == true)
        let unmerged = edited(setModel("merges", [["a", "c"]]))
        #expect(unmerged?.kind == .merges)
        #expect(unmerged?.reason.contains("'ac'") == true)
        #expect(edited(setModel("merges", ["a b c"]))?.kind == .merges)
        #expect(edited(setModel("merges", [42]))?.kind == .merges)
        #expect(edited(setModel("unk_token", "<nope>"))?.kind == .vocabulary)
        #expect(edited(setModel("dropout", 0.1))?.kind == .unsupported)
        #expect(edited { $0["normalizer"] = ["type": "BertNormalizer"] }?.kind == .unsupported)
        #expect(edited { $0["pre_tokenizer"] = ["type": "Whitespace"] }?.kind == .unsupported)
        #expect(edited { $0["decoder"] = ["type": "WordPiece"] }?.kind == .unsupported)
        #expect(edited { $0["added_tokens"] = [["content": "<x>"]] }?.kind == .addedTokens)
    }

    // MARK: Throughput (printed, not asserted)

    /// The pre-token cache against a dictionary: keys of 1–64 bytes (short ones kept in the slot, long ones in
    /// the arena), keys equal in their first 8 bytes, one or several ids, through growth and a restart.
    @Test func preTokenCacheAgreesWithADictionary() {
        var generator = RandomStream(seed: 7)
        var cache = PreTokenCache()
        var reference: [[UInt8]: [Int32]] = [:]
        func lookup(_ key: [UInt8]) -> [Int]? {
            var out = [-1]
            let hit = key.withUnsafeBufferPointer { cache.appendIDs(of: $0, hash: PreTokenCache.hash($0), to: &out) }
            return hit ? Array(out.dropFirst()) : nil
        }
        let prefix: [UInt8] = Array("abcdefgh".utf8)
        for n in 0..<6_000 {
            let length = Int.random(in: 1...PreTokenCache.maximumKeyLength, using: &generator)
            var key = (0..<length).map { _ in UInt8.random(in: 0...3, using: &generator) }
            if n % 3 == 0 { key = prefix + key }  // shares its first 8 bytes with many others
            if key.count > PreTokenCache.maximumKeyLength { key.removeLast(key.count - PreTokenCache.maximumKeyLength) }
            if reference[key] != nil { continue }
            #expect(lookup(key) == nil)
            let ids = (0..<Int.random(in: 1...4, using: &generator)).map { _ in Int32.random(in: 0...50_000, using: &generator) }
            key.withUnsafeBufferPointer { cache.insert($0, hash: PreTokenCache.hash($0), ids: ids[...]) }
            reference[key] = ids
        }
        for (key, ids) in reference { #expect(lookup(key) == ids.map(Int.init)) }
        #expect(lookup(Array("abcdefg".utf8)) == nil)  // never inserted (keys are bytes 0–3, or the 8-byte prefix and more)
        let tooLong = [UInt8](repeating: 1, count: PreTokenCache.maximumKeyLength + 1)
        tooLong.withUnsafeBufferPointer { cache.insert($0, hash: PreTokenCache.hash($0), ids: [1][...]) }
        #expect(lookup(tooLong) == nil)
        // Every key under one hash: only the key comparison tells them apart (same length, same first 8 bytes).
        var colliding = PreTokenCache()
        let keys = (0..<200).map { Array(String(format: "%@%03d", $0 % 2 == 0 ? "abcdefgh" : "abcde", $0).utf8) }
        for (v, key) in keys.enumerated() {
            key.withUnsafeBufferPointer { colliding.insert($0, hash: 42, ids: [Int32(v), Int32(v)][...]) }
        }
        for (v, key) in keys.enumerated() {
            var out: [Int] = []
            let hit = key.withUnsafeBufferPointer { colliding.appendIDs(of: $0, hash: 42, to: &out) }
            #expect(hit && out == [v, v])
        }
        // Full: the table starts over, forgetting everything, and keeps working.
        var small = PreTokenCache(maximumEntries: 100)
        func smallLookup(_ key: [UInt8]) -> Bool {
            var out: [Int] = []
            return key.withUnsafeBufferPointer { small.appendIDs(of: $0, hash: PreTokenCache.hash($0), to: &out) }
        }
        for v in 0..<150 {
            let key = Array("piece \(v)".utf8)
            key.withUnsafeBufferPointer { small.insert($0, hash: PreTokenCache.hash($0), ids: [Int32(v)][...]) }
        }
        #expect(!smallLookup(Array("piece 0".utf8)))
        #expect(smallLookup(Array("piece 149".utf8)) && smallLookup(Array("piece 100".utf8)))
    }

    /// MB/s on the play repeated to `SUBSPACE_TOKENIZER_BENCH_MB` (default 4) megabytes; with the variable set, also
    /// for the GPT-2 fixture and the Qwen2, Llama-3 and Llama-2 shapes: wall-clock and per second of the encoding thread's own CPU
    /// time (which a loaded machine does not inflate). Meaningful only in a release build:
    /// `SUBSPACE_TOKENIZER_BENCH_MB=20 swift test -c release --filter throughput`.
    @Test func throughput() throws {
        let megabytes = Int(ProcessInfo.processInfo.environment["SUBSPACE_TOKENIZER_BENCH_MB"] ?? "") ?? 4
        let play = try fixtureText("long_text.txt")
        let text = String(repeating: play, count: max(1, megabytes * 1_000_000 / play.utf8.count))
        let size = Double(text.utf8.count) / 1e6
        let threads = ThreadPolicy.decide().allowedCores
        func rate(_ body: () -> [Int]) -> (Double, [Int]) {
            let start = DispatchTime.now().uptimeNanoseconds
            let ids = body()
            return (size / (Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9), ids)
        }
        let (serial, serialIDs) = rate { fixtureTokenizer.encode(text) }
        let (parallel, parallelIDs) = rate { fixtureTokenizer.encode(text, threads: threads) }
        #expect(serialIDs == parallelIDs)
        print(String(format: "BPE encode: %.1f MB: %.1f MB/s on one thread, %.1f MB/s on %d", size, serial, parallel, threads))
        func threadSeconds() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
        }
        // The families only when asked (SUBSPACE_TOKENIZER_BENCH_MB set): the Llama-2 shape is slow in a debug build.
        let families = ProcessInfo.processInfo.environment["SUBSPACE_TOKENIZER_BENCH_MB"] == nil ? [] : ["gpt2-fixture", "qwen2", "llama3", "llama2"]
        for family in families {
            let tokenizer = family == "gpt2-fixture" ? fixtureTokenizer
                : try BPETokenizer(contentsOfFile: TokenizerResources.path(family, "tokenizer.json"))
            let wall = DispatchTime.now().uptimeNanoseconds, cpu = threadSeconds()
            let ids = tokenizer.encode(text, addingSpecialTokens: false)
            let cpuSeconds = threadSeconds() - cpu, wallSeconds = Double(DispatchTime.now().uptimeNanoseconds - wall) * 1e-9
            #expect(!ids.isEmpty)
            print("BPE encode, one thread, \(family): " + String(format: "%.1f MB in %.2f s wall (%.1f MB/s), %.2f s CPU (%.1f MB per CPU second)",
                                                                   size, wallSeconds, size / wallSeconds, cpuSeconds, size / cpuSeconds))
        }
    }
}
