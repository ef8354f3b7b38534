import Foundation
import Testing
import SubspaceModel
@testable import SubspaceTraining

@Suite struct DataCorpusTests {
    typealias S = DataTestSupport

    /// Three documents, listed out of name order: one without a final newline, one with multi-byte
    /// characters, one a single line.
    static let documents: [(name: String, text: String)] = [
        ("b.txt", "Second document.\nIt has — dashes — and ünïcödé.\nThird line here.\nFourth line.\n"),
        ("a.txt", "First document, line one.\nLine two.\nLine three.\nLine four, no newline"),
        ("c.txt", "one single line without any line break at all, long enough to cut"),
        ("notes.md", "not a .txt file: ignored\n"),
    ]

    /// The head and tail of a text as the builder cuts it.
    func parts(_ text: String, fraction: Double) -> (head: String, tail: String) {
        var copy = text
        return copy.withUTF8 { bytes in
            let cut = CorpusBuilder.splitOffset(bytes, validationFraction: fraction)
            return (String(decoding: UnsafeBufferPointer(rebasing: bytes[..<cut]), as: UTF8.self),
                    String(decoding: UnsafeBufferPointer(rebasing: bytes[cut...]), as: UTF8.self))
        }
    }

    @Test func byteShardsEqualDirectEncodingAndSplitsAreDisjoint() throws {
        let input = try S.textFolder(Self.documents), output = try S.temporaryFolder("shards")
        defer { S.cleanUp(input); S.cleanUp(output) }
        let builder = try CorpusBuilder(tokenizer: "bytes", validationFraction: 0.25, threads: 2)
        var reported: [String] = []
        let manifest = try builder.build(input: input, output: output) { reported.append($0.file) }
        #expect(reported == ["a.txt", "b.txt", "c.txt"])
        #expect(manifest.dtype == .uint16 && manifest.separator == nil && manifest.vocabularySize == 256)

        let shards = try TokenShards(folder: output)
        #expect(shards.manifest == manifest)
        var expectedTrain: [Int32] = [], expectedValidation: [Int32] = []
        var trainOffset = 0, validationOffset = 0
        for name in ["a.txt", "b.txt", "c.txt"] {
            let text = Self.documents.first { $0.name == name }!.text
            let (head, tail) = parts(text, fraction: 0.25)
            #expect(head + tail == text)
            #expect(!head.isEmpty && !tail.isEmpty, "\(name)")
            expectedTrain += head.utf8.map { Int32($0) }
            expectedValidation += tail.utf8.map { Int32($0) }
            // Each document's tokens decode to exactly its head (train) and tail (validation): no text in both.
            let source = manifest.sources.first { $0.file == name }!
            let trainIDs = shards.train[trainOffset..<trainOffset + source.trainTokens].map(Int.init)
            let validationIDs = shards.validation[validationOffset..<validationOffset + source.validationTokens].map(Int.init)
            #expect(try ByteTokenizer().decode(trainIDs) == head)
            #expect(try ByteTokenizer().decode(validationIDs) == tail)
            #expect(source.trainBytes == head.utf8.count && source.bytes == text.utf8.count)
            trainOffset += source.trainTokens
            validationOffset += source.validationTokens
        }
        #expect(Array(shards.train) == expectedTrain)
        #expect(Array(shards.validation) == expectedValidation)
        #expect(manifest.train.bytes == 2 * expectedTrain.count)
        // Multi-line documents are cut at a line start.
        #expect(parts(Self.documents[0].text, fraction: 0.25).tail == "Fourth line.\n")
    }

    @Test func bpeShardsEqualDirectEncodingWithEndOfText() throws {
        let text = try String(contentsOfFile: S.longText, encoding: .utf8)
        let input = try S.textFolder([("play.txt", text), ("short.txt", "To be, or not to be:\nthat is the question.\n")])
        let output = try S.temporaryFolder("shards")
        defer { S.cleanUp(input); S.cleanUp(output) }
        let tokenizer = try Tokenizers.load(S.bpeTokenizer)
        let eot = try #require(tokenizer.endOfText)
        let manifest = try CorpusBuilder(tokenizer: S.bpeTokenizer, validationFraction: 0.1, threads: 2)
            .build(input: input, output: output)
        #expect(manifest.separator == eot && manifest.dtype == .uint16 && manifest.vocabularySize == tokenizer.vocabularySize)
        #expect(manifest.tokenizer == URL(fileURLWithPath: S.bpeTokenizer).standardizedFileURL.path)
        #expect(manifest.tokenizerSHA256?.count == 64)

        var train: [Int] = [], validation: [Int] = []
        for document in [text, "To be, or not to be:\nthat is the question.\n"] {
            let (head, tail) = parts(document, fraction: 0.1)
            // An empty part (the short text's cut falls in its last line) gets no separator either.
            if !head.isEmpty { train += tokenizer.encode(head) + [eot] }
            if !tail.isEmpty { validation += tokenizer.encode(tail) + [eot] }
            #expect(head + tail == document)
        }
        let shards = try TokenShards(folder: output)
        // Compared outside #expect, which would print both 40k-id arrays on a failure.
        let sameTrain = shards.train.map(Int.init) == train
        let sameValidation = shards.validation.map(Int.init) == validation
        #expect(sameTrain, "train tokens differ from a direct encoding")
        #expect(sameValidation, "validation tokens differ from a direct encoding")
        #expect(manifest.sources[1].validationTokens == 0)
        // The validation tail of the play is about a tenth of it.
        let play = manifest.sources[0]
        #expect(abs(Double(play.trainBytes) / Double(play.bytes) - 0.9) < 0.01)
    }

    @Test func wideVocabularyIsStoredAsInt32() throws {
        let input = try S.textFolder([("x.txt", "ab\ncd\n")]), output = try S.temporaryFolder("shards")
        defer { S.cleanUp(input); S.cleanUp(output) }
        let manifest = try CorpusBuilder(tokenizer: WideTokenizer(), specifier: "wide", validationFraction: 0.5)
            .build(input: input, output: output)
        #expect(manifest.dtype == .int32)
        let shards = try TokenShards(folder: output)
        #expect(Array(shards.train) == [66_097, 66_098, 66_010, 65_999])
        #expect(Array(shards.validation) == [66_099, 66_100, 66_010, 65_999])
        #expect(manifest.train.bytes == 16)
    }

    @Test func zeroFractionLeavesValidationEmpty() throws {
        let input = try S.textFolder([("x.txt", "abc\n")]), output = try S.temporaryFolder("shards")
        defer { S.cleanUp(input); S.cleanUp(output) }
        let manifest = try CorpusBuilder(tokenizer: "bytes", validationFraction: 0).build(input: input, output: output)
        #expect(manifest.train.tokens == 4 && manifest.validation.tokens == 0)
        let shards = try TokenShards(folder: output)
        #expect(shards.validation.isEmpty && CorpusDataset(shards: shards, split: .validation, sequence: 2).count == 0)
    }

    /// Builds a small corpus, lets `damage` change it, and returns the error opening it raises.
    func openError(_ damage: (String) throws -> Void, verify: Bool = true) throws -> DataError? {
        let input = try S.textFolder(Self.documents), output = try S.temporaryFolder("shards")
        defer { S.cleanUp(input); S.cleanUp(output) }
        try CorpusBuilder(tokenizer: "bytes", validationFraction: 0.25).build(input: input, output: output)
        try damage(output)
        do {
            _ = try TokenShards(folder: output, verifyChecksums: verify)
            return nil
        } catch let error as DataError {
            return error
        }
    }

    @Test func corruptionIsRefusedNamingTheFile() throws {
        let flipped = try openError { folder in
            let path = folder + "/train.bin"
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[7] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        }
        #expect(flipped?.kind == .checksum)
        #expect(flipped?.file.hasSuffix("/train.bin") == true)
        #expect(flipped?.description.contains("train.bin") == true)

        let truncated = try openError { folder in
            let path = folder + "/val.bin"
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            try bytes.dropLast(2).write(to: URL(fileURLWithPath: path))
        }
        #expect(truncated?.kind == .size)
        #expect(truncated?.file.hasSuffix("/val.bin") == true)

        let missing = try openError { try FileManager.default.removeItem(atPath: $0 + "/val.bin") }
        #expect(missing?.kind == .io && missing?.file.hasSuffix("/val.bin") == true)

        let noManifest = try openError { try FileManager.default.removeItem(atPath: $0 + "/corpus.json") }
        #expect(noManifest?.kind == .io && noManifest?.file.hasSuffix("/corpus.json") == true)

        func editManifest(_ edit: @escaping (inout [String: Any]) -> Void) -> (String) throws -> Void {
            { folder in
                let url = URL(fileURLWithPath: folder + "/corpus.json")
                var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
                edit(&json)
                try JSONSerialization.data(withJSONObject: json).write(to: url)
            }
        }
        let badDType = try openError(editManifest { $0["dtype"] = "float32" })
        #expect(badDType?.kind == .dtype && badDType?.file.hasSuffix("/corpus.json") == true)
        let narrow = try openError(editManifest { $0["vocabulary_size"] = 70_000 })
        #expect(narrow?.kind == .dtype)
        let noTokens = try openError(editManifest { json in
            var train = json["train"] as! [String: Any]
            train["tokens"] = nil
            json["train"] = train
        })
        #expect(noTokens?.kind == .manifest && noTokens?.reason.contains("tokens") == true)
        let wrongCount = try openError(editManifest { json in
            var train = json["train"] as! [String: Any]
            train["tokens"] = (train["tokens"] as! Int) + 1
            train["bytes"] = (train["bytes"] as! Int) + 2
            json["train"] = train
        })
        #expect(wrongCount?.kind == .manifest, "sources no longer add up")
        let garbage = try openError { try Data("{ not json".utf8).write(to: URL(fileURLWithPath: $0 + "/corpus.json")) }
        #expect(garbage?.kind == .manifest)

        // Without checksum verification a flipped byte goes unnoticed (sizes are still checked).
        let unverified = try openError({ folder in
            let path = folder + "/train.bin"
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[7] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        }, verify: false)
        #expect(unverified == nil)
    }

    @Test func inputFoldersAreChecked() throws {
        #expect(throws: DataError.self) { try CorpusBuilder.sourceFiles(in: "/nonexistent/subspace-data") }
        let empty = try S.textFolder([("readme.md", "no texts")])
        defer { S.cleanUp(empty) }
        do {
            _ = try CorpusBuilder.sourceFiles(in: empty)
            Issue.record("a folder without .txt files was accepted")
        } catch let error as DataError {
            #expect(error.kind == .input && error.file == empty)
        }
        #expect(throws: DataError.self) { try CorpusBuilder(tokenizer: "bytes", validationFraction: 1) }
        #expect(throws: DataError.self) { try CorpusBuilder(tokenizer: "bytes", validationFraction: -0.1) }

        let bad = try S.temporaryFolder("texts")
        defer { S.cleanUp(bad) }
        try Data([0x61, 0xFF, 0x0A]).write(to: URL(fileURLWithPath: bad + "/bad.txt"))
        do {
            try CorpusBuilder(tokenizer: "bytes").build(input: bad, output: bad + "/out")
            Issue.record("invalid UTF-8 was accepted")
        } catch let error as DataError {
            #expect(error.kind == .input && error.file.hasSuffix("/bad.txt"))
        }
    }

    @Test func splitOffsets() {
        func cut(_ text: String, _ fraction: Double) -> Int {
            Array(text.utf8).withUnsafeBufferPointer { CorpusBuilder.splitOffset($0, validationFraction: fraction) }
        }
        #expect(cut("aaaa\nbbbb\ncccc\ndddd\n", 0.25) == 15)  // 15 is a line start: kept
        #expect(cut("aaaa\nbbbb\ncccc\ndddd\n", 0.3) == 15)   // 14 moves to the next line start
        #expect(cut("aaaa\nbbbb\ncccc\ndddd\n", 0) == 20)
        #expect(cut("abcdefghij", 0.5) == 5)                  // no line break: the byte itself
        #expect(cut("aaaaé", 0.5) == 3)
        #expect(cut("aéé", 0.5) == 3)                          // 2 is inside "é" (bytes 1–2): moved to 3
        #expect(cut("", 0.5) == 0)
    }

    @Test func windowsOverTheTokens() throws {
        let text = String((0..<103).map { Character(UnicodeScalar(UInt8(33 + $0 % 90))) })
        let input = try S.textFolder([("x.txt", text)]), output = try S.temporaryFolder("shards")
        defer { S.cleanUp(input); S.cleanUp(output) }
        try CorpusBuilder(tokenizer: "bytes", validationFraction: 0).build(input: input, output: output)
        let shards = try TokenShards(folder: output)
        let tokens = Array(text.utf8).map { Int32($0) }
        for T in [1, 7, 10, 51, 102] {
            let data = CorpusDataset(shards: shards, sequence: T)
            #expect(data.count == (103 - 1) / T)
            for i in 0..<data.count {
                let sample = data.sample(i)
                #expect(sample.ids == Array(tokens[i * T..<i * T + T]), "T \(T) window \(i)")
                #expect(sample.targets == Array(tokens[i * T + 1...i * T + T]), "T \(T) window \(i)")
            }
        }
        #expect(CorpusDataset(shards: shards, sequence: 103).count == 0)
        // A batch is the samples' rows, row-major.
        let data = CorpusDataset(shards: shards, sequence: 10)
        var ids: [Int32] = [], targets: [Int32] = []
        data.batch([3, 0, 9], ids: &ids, targets: &targets)
        #expect(ids == data.sample(3).ids + data.sample(0).ids + data.sample(9).ids)
        #expect(targets == data.sample(3).targets + data.sample(0).targets + data.sample(9).targets)
    }

    @Test func sha256MatchesKnownDigests() {
        func digest(_ s: String, chunk: Int = 1 << 30) -> String {
            var h = SHA256()
            let bytes = Array(s.utf8)
            for start in stride(from: 0, to: bytes.count, by: chunk) {
                h.update(Array(bytes[start..<min(bytes.count, start + chunk)]))
            }
            return h.finalize()
        }
        #expect(digest("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        #expect(digest(two) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        for chunk in [1, 3, 63, 64, 65] { #expect(digest(two, chunk: chunk) == digest(two)) }
        let million = String(repeating: "a", count: 1_000_000)
        #expect(digest(million, chunk: 4099) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
