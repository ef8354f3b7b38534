import Foundation
import SubspaceCore

extension BPETokenizer {
    /// Loads an HF `tokenizer.json` whose model is BPE (see the type's documentation for the pipeline
    /// components it reads).
    public init(contentsOfFile path: String) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw TokenizerFileError(file: path, .io, "no such file")
        }
        guard !isFolder.boolValue else {
            throw TokenizerFileError(file: path, .io, "is a folder, not a tokenizer.json")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TokenizerFileError(file: path, .io, "cannot read the file: \(FileSystemMessage.reason(error))")
        }
        try self.init(json: data, file: path)
    }

    /// Parses the contents of a `tokenizer.json`; `file` names it in errors.
    public init(json data: Data, file: String = "<tokenizer.json>") throws {
        // JSONDecoder rather than JSONSerialization: the latter (swift-corelibs-foundation) drops a leading
        // U+FEFF from strings, which would silently change such a token.
        let document: TokenizerDocument
        do {
            document = try JSONDecoder().decode(TokenizerDocument.self, from: data)
        } catch let error as DecodingError {
            // Foundation reports a number that does not fit the field (a fractional id) as invalid JSON with
            // no path; say so when the text does parse.
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty,
               (try? JSONSerialization.jsonObject(with: data)) is [String: Any] {
                throw TokenizerFileError(file: file, .field, "a value has the wrong type (an id that is not an integer?)")
            }
            throw Self.fileError(error, file: file)
        } catch let error as TokenizerFileError {
            throw error
        } catch {
            throw TokenizerFileError(file: file, .json, "cannot be parsed: \(error)")
        }
        try self.init(configuration: try document.configuration(file: file), file: file)
    }

    init(configuration c: Configuration, file: String) throws {
        func fail(_ kind: TokenizerFileError.Kind, _ reason: String) -> TokenizerFileError {
            TokenizerFileError(file: file, kind, reason)
        }
        var largest = -1
        for (token, id) in c.vocabulary {
            guard id >= 0, id <= Int(Int32.max) else { throw fail(.vocabulary, "token '\(token)' has id \(id)") }
            largest = max(largest, id)
        }
        for added in c.addedTokens {
            guard added.id >= 0, added.id <= Int(Int32.max) else {
                throw fail(.addedTokens, "added token '\(added.content)' has id \(added.id)")
            }
            largest = max(largest, added.id)
        }
        guard largest >= 0 else { throw fail(.vocabulary, "the vocabulary is empty") }
        // Tables are indexed by id; refuse an id that would make them absurd rather than exhaust memory.
        guard largest < 1 << 24 else { throw fail(.vocabulary, "id \(largest) is too large (at most \((1 << 24) - 1))") }
        vocabularySize = largest + 1
        vocabulary = c.vocabulary
        addedTokens = c.addedTokens
        addsPrefixSpace = c.addPrefixSpace
        ignoresMerges = c.ignoreMerges
        splitsWithRegex = c.useRegex

        var merges = BPEMergeTable(minimumCapacity: c.merges.count)
        for (rank, (left, right)) in c.merges.enumerated() {
            let describe = "merge #\(rank) '\(left) \(right)'"
            guard let l = c.vocabulary[left] else { throw fail(.merges, "\(describe): '\(left)' is not in the vocabulary") }
            guard let r = c.vocabulary[right] else { throw fail(.merges, "\(describe): '\(right)' is not in the vocabulary") }
            guard let m = c.vocabulary[left + right] else {
                throw fail(.merges, "\(describe): the merged token '\(left + right)' is not in the vocabulary")
            }
            merges.insert(Int32(l), Int32(r), rank: Int32(rank), merged: Int32(m))
        }
        self.merges = merges

        pipeline = c.pipeline
        postProcessor = c.postProcessor
        let byteLevel = c.pipeline?.preTokenizer.isByteLevel ?? true
        isByteLevelModel = byteLevel
        let byteIDs = ByteLevelAlphabet.characters.map { Int32(c.vocabulary[String($0)] ?? -1) }
        self.byteIDs = byteIDs
        allBytesInVocabulary = byteLevel && !byteIDs.contains(-1)
        fallbackIDs = (0..<256).map { b in
            guard c.byteFallback else { return nil }
            let ids = String(ByteLevelAlphabet.characters[b]).utf8.map { c.vocabulary[Self.byteFallbackToken($0)] }
            return ids.contains(nil) ? nil : ids.map { Int32($0!) }
        }
        rawFallbackIDs = (0..<256).map { b in c.byteFallback ? Int32(c.vocabulary[Self.byteFallbackToken(UInt8(b))] ?? -1) : -1 }
        var planeZero = [Int32](repeating: -1, count: byteLevel ? 0 : 0x10000)
        var astral: [UInt32: Int32] = [:]
        if !byteLevel {
            for (token, id) in c.vocabulary {
                let scalars = token.unicodeScalars
                guard scalars.count == 1, let s = scalars.first else { continue }
                if s.value < 0x10000 { planeZero[Int(s.value)] = Int32(id) } else { astral[s.value] = Int32(id) }
            }
        }
        scalarIDs = planeZero
        astralScalarIDs = astral
        if let unk = c.unknownToken {
            guard let id = c.vocabulary[unk] else { throw fail(.vocabulary, "unk_token '\(unk)' is not in the vocabulary") }
            unknownID = Int32(id)
        } else {
            unknownID = nil
        }
        fusesUnknown = c.fuseUnknown

        var wholePieces: [[UInt8]: Int32] = [:]
        if c.ignoreMerges {
            for (token, id) in c.vocabulary {
                if !byteLevel { wholePieces[Array(token.utf8)] = Int32(id) }
                else if let bytes = ByteLevelAlphabet.decode(token) { wholePieces[bytes] = Int32(id) }
            }
        }
        self.wholePieces = wholePieces

        var tokens = [String?](repeating: nil, count: vocabularySize)
        for (token, id) in c.vocabulary { tokens[id] = token }
        var isSpecial = [Bool](repeating: false, count: vocabularySize)
        var specialTokens: [String: Int] = [:]
        for added in c.addedTokens {
            tokens[added.id] = added.content
            isSpecial[added.id] = added.isSpecial
            if added.isSpecial { specialTokens[added.content] = added.id }
        }
        self.tokens = tokens
        self.isSpecial = isSpecial
        self.specialTokens = specialTokens
        endOfText = ["<|endoftext|>", "<|end_of_text|>", "</s>"].lazy.compactMap { name in
            c.addedTokens.last { $0.content == name }?.id ?? c.vocabulary[name]
        }.first

        var decodedBytes: [UInt8] = []
        var decodedStart = [0]
        decodedStart.reserveCapacity(vocabularySize + 1)
        for token in tokens {
            if let token { decodedBytes += (byteLevel ? ByteLevelAlphabet.decode(token) : nil) ?? Array(token.utf8) }
            decodedStart.append(decodedBytes.count)
        }
        self.decodedBytes = decodedBytes
        self.decodedStart = decodedStart
        isKnown = tokens.map { $0 != nil }

        rawTokenMatcher = AddedTokenMatcher(c.addedTokens.filter { !$0.normalized })
        normalizedTokenMatcher = AddedTokenMatcher(c.addedTokens.filter(\.normalized))
    }

    /// HF's byte-fallback token for a byte: `<0x0A>`.
    static func byteFallbackToken(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        return "<0x" + (hex.count == 1 ? "0" : "") + hex + ">"
    }

    /// What the loader takes from a `tokenizer.json`.
    struct Configuration {
        var vocabulary: [String: Int]
        var merges: [(String, String)]
        var addedTokens: [AddedToken]
        var addPrefixSpace: Bool
        var useRegex: Bool
        var ignoreMerges: Bool
        var unknownToken: String?
        var fuseUnknown: Bool
        var byteFallback: Bool
        /// nil for the GPT-2 shape (`addPrefixSpace`/`useRegex` then describe its ByteLevel step).
        var pipeline: Pipeline?
        var postProcessor: TemplatePostProcessor
    }
}

extension BPETokenizer {
    /// A decoding error as a `TokenizerFileError` whose kind follows the field at fault.
    static func fileError(_ error: DecodingError, file: String) -> TokenizerFileError {
        let context: DecodingError.Context
        var detail = ""
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): context = c
        case .keyNotFound(let key, let c):
            context = c
            detail = "missing '\(key.stringValue)'"
        @unknown default: return TokenizerFileError(file: file, .json, "cannot be parsed: \(error)")
        }
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            .trimmingCharacters(in: CharacterSet(charactersIn: "."))
        if detail.isEmpty {
            detail = context.debugDescription
            if let underlying = context.underlyingError { detail += " (\(FileSystemMessage.reason(underlying)))" }
        }
        if path.isEmpty {
            if case .keyNotFound = error { return TokenizerFileError(file: file, .field, detail) }
            if case .dataCorrupted = error { return TokenizerFileError(file: file, .json, "not valid JSON: \(detail)") }
            return TokenizerFileError(file: file, .json, "the top level is not a JSON object: \(detail)")
        }
        let kind: TokenizerFileError.Kind =
            path.hasPrefix("model.merges") ? .merges
            : path.hasPrefix("model.vocab") ? .vocabulary
            : path.hasPrefix("added_tokens") ? .addedTokens : .field
        return TokenizerFileError(file: file, kind, "at '\(path)': \(detail)")
    }
}

/// The parts of a `tokenizer.json` this implementation reads; other fields are ignored.
private struct TokenizerDocument: Decodable {
    struct Model: Decodable {
        var type: String?
        var vocab: [String: Int]
        var merges: [Merge]
        var dropout: Double?
        var unkToken: String?
        var continuingSubwordPrefix: String?
        var endOfWordSuffix: String?
        var fuseUnk: Bool?
        var byteFallback: Bool?
        var ignoreMerges: Bool?
        enum CodingKeys: String, CodingKey {
            case type, vocab, merges, dropout
            case unkToken = "unk_token"
            case continuingSubwordPrefix = "continuing_subword_prefix"
            case endOfWordSuffix = "end_of_word_suffix"
            case fuseUnk = "fuse_unk"
            case byteFallback = "byte_fallback"
            case ignoreMerges = "ignore_merges"
        }
    }

    /// `"a b"` (older files) or `["a", "b"]` (tokenizers ≥ 0.20).
    enum Merge: Decodable {
        case line(String)
        case pair(String, String)
        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let line = try? container.decode(String.self) {
                self = .line(line)
            } else if let pair = try? container.decode([String].self), pair.count == 2 {
                self = .pair(pair[0], pair[1])
            } else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
    }

    struct Added: Decodable {
        var id: Int
        var content: String
        var singleWord: Bool?
        var lstrip: Bool?
        var rstrip: Bool?
        var normalized: Bool?
        var special: Bool?
        enum CodingKeys: String, CodingKey {
            case id, content, lstrip, rstrip, normalized, special
            case singleWord = "single_word"
        }
    }

    var addedTokens: [Added]?
    var normalizer: TokenizerJSONValue?
    var preTokenizer: TokenizerJSONValue?
    var postProcessor: TokenizerJSONValue?
    var decoder: TokenizerJSONValue?
    var model: Model

    enum CodingKeys: String, CodingKey {
        case normalizer, decoder, model
        case addedTokens = "added_tokens"
        case preTokenizer = "pre_tokenizer"
        case postProcessor = "post_processor"
    }

    func configuration(file: String) throws -> BPETokenizer.Configuration {
        func fail(_ kind: TokenizerFileError.Kind, _ reason: String) -> TokenizerFileError {
            TokenizerFileError(file: file, kind, reason)
        }
        func reader(_ value: TokenizerJSONValue?, _ path: String) -> ComponentReader? {
            guard let value, !value.isNull else { return nil }
            return ComponentReader(value: value, path: path, file: file)
        }
        // HF infers the model type from the fields when "type" is absent; merges make it BPE.
        if let type = model.type, type != "BPE" { throw fail(.unsupported, "model type '\(type)' is not BPE") }
        let normalizer = try reader(normalizer, "normalizer").map { try TextNormalizer($0) }
        let preTokenizer = try PreTokenizerPipeline(reader(preTokenizer, "pre_tokenizer"))
        let decoder = try reader(decoder, "decoder").map { try TokenDecoderPipeline($0) }
        let postProcessor = try reader(postProcessor, "post_processor").map { try TemplatePostProcessor($0) } ?? TemplatePostProcessor()
        if let p = model.dropout, p != 0 { throw fail(.unsupported, "BPE dropout (\(p)) is not supported") }
        for (key, affix) in [("continuing_subword_prefix", model.continuingSubwordPrefix),
                             ("end_of_word_suffix", model.endOfWordSuffix)] {
            if let affix, !affix.isEmpty {
                throw fail(.unsupported, "'model.\(key)' ('\(affix)') is not supported")
            }
        }
        let merges = try model.merges.enumerated().map { rank, merge -> (String, String) in
            switch merge {
            case .pair(let a, let b): return (a, b)
            case .line(let line):
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw fail(.merges, "merge #\(rank) '\(line)' is not two tokens separated by one space")
                }
                return (String(parts[0]), String(parts[1]))
            }
        }
        let added = (addedTokens ?? []).map { a in
            let special = a.special ?? false
            return BPETokenizer.AddedToken(
                id: a.id, content: a.content, isSpecial: special, singleWord: a.singleWord ?? false,
                stripsLeft: a.lstrip ?? false, stripsRight: a.rstrip ?? false, normalized: a.normalized ?? !special)
        }
        // The GPT-2 shape (no normalizer, one ByteLevel pre-tokenizer, a ByteLevel decoder or none) keeps
        // its own encoder; HF's ByteLevel defaults are add_prefix_space and use_regex true.
        var classic: (addPrefixSpace: Bool, useRegex: Bool)?
        if normalizer == nil, preTokenizer.steps.count == 1, case .byteLevel(let prefix, let regex) = preTokenizer.steps[0],
           decoder == nil || decoder!.isByteLevelOnly {
            classic = (prefix, regex)
        }
        return BPETokenizer.Configuration(
            vocabulary: model.vocab, merges: merges, addedTokens: added,
            addPrefixSpace: classic?.addPrefixSpace ?? false, useRegex: classic?.useRegex ?? false,
            ignoreMerges: model.ignoreMerges ?? false, unknownToken: model.unkToken,
            fuseUnknown: model.fuseUnk ?? false, byteFallback: model.byteFallback ?? false,
            pipeline: classic == nil ? BPETokenizer.Pipeline(normalizer: normalizer, preTokenizer: preTokenizer, decoder: decoder) : nil,
            postProcessor: postProcessor)
    }
}
