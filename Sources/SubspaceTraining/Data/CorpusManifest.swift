import Foundation

/// How token ids are stored in `train.bin` and `val.bin`: little-endian, no header.
public enum TokenDType: String, Codable, Sendable, CaseIterable {
    case uint16
    case int32

    public var byteSize: Int {
        switch self {
        case .uint16: 2
        case .int32: 4
        }
    }

    /// The smallest dtype that holds every id of a vocabulary: `uint16` up to 65,536 ids, else `int32`.
    public static func smallest(forVocabularySize size: Int) -> TokenDType {
        size <= Int(UInt16.max) + 1 ? .uint16 : .int32
    }

    /// One more than the largest id the dtype can hold.
    public var capacity: Int {
        switch self {
        case .uint16: Int(UInt16.max) + 1
        case .int32: Int(Int32.max) + 1
        }
    }
}

/// `corpus.json`, the manifest of a token-shard folder written by `CorpusBuilder` and checked by
/// `TokenShards`. Keys are snake_case.
public struct CorpusManifest: Codable, Sendable, Equatable {
    public static let fileName = "corpus.json"
    public static let currentFormat = "subspace-token-shards/1"
    /// How the validation split is cut; see `CorpusBuilder`.
    public static let perDocumentTail = "per-document tail, cut at a line start"

    /// One shard file: `train.bin` or `val.bin`.
    public struct Shard: Codable, Sendable, Equatable {
        public var file: String
        public var tokens: Int
        public var bytes: Int
        /// SHA-256 of the file, lowercase hex (what `sha256sum` prints).
        public var sha256: String

        public init(file: String, tokens: Int, bytes: Int, sha256: String) {
            self.file = file
            self.tokens = tokens
            self.bytes = bytes
            self.sha256 = sha256
        }
    }

    /// One input text and where its tokens went.
    public struct Source: Codable, Sendable, Equatable {
        public var file: String
        public var bytes: Int
        /// UTF-8 bytes of the text's head that went to training; the rest went to validation.
        public var trainBytes: Int
        public var trainTokens: Int
        public var validationTokens: Int

        public init(file: String, bytes: Int, trainBytes: Int, trainTokens: Int, validationTokens: Int) {
            self.file = file
            self.bytes = bytes
            self.trainBytes = trainBytes
            self.trainTokens = trainTokens
            self.validationTokens = validationTokens
        }

        enum CodingKeys: String, CodingKey {
            case file, bytes
            case trainBytes = "train_bytes"
            case trainTokens = "train_tokens"
            case validationTokens = "validation_tokens"
        }
    }

    public var format: String
    /// The tokenizer as `Tokenizers.load` takes it: `bytes`, or the absolute path of a tokenizer.json.
    public var tokenizer: String
    /// SHA-256 of the tokenizer file, when the tokenizer came from one.
    public var tokenizerSHA256: String?
    public var vocabularySize: Int
    public var dtype: TokenDType
    public var validationFraction: Double
    public var split: String
    /// The id appended after each document's train part and after its validation part (the tokenizer's
    /// end-of-text token); nil when the tokenizer has none and documents are simply concatenated.
    public var separator: Int?
    public var train: Shard
    public var validation: Shard
    public var sources: [Source]

    enum CodingKeys: String, CodingKey {
        case format, tokenizer, dtype, split, separator, train, validation, sources
        case tokenizerSHA256 = "tokenizer_sha256"
        case vocabularySize = "vocabulary_size"
        case validationFraction = "validation_fraction"
    }

    public init(format: String = CorpusManifest.currentFormat, tokenizer: String, tokenizerSHA256: String?,
                vocabularySize: Int, dtype: TokenDType, validationFraction: Double,
                split: String = CorpusManifest.perDocumentTail, separator: Int?, train: Shard, validation: Shard,
                sources: [Source]) {
        self.format = format
        self.tokenizer = tokenizer
        self.tokenizerSHA256 = tokenizerSHA256
        self.vocabularySize = vocabularySize
        self.dtype = dtype
        self.validationFraction = validationFraction
        self.split = split
        self.separator = separator
        self.train = train
        self.validation = validation
        self.sources = sources
    }

    /// Writes every key, with `null` for an absent separator or tokenizer digest (rather than leaving
    /// the key out), so the manifest always shows the whole schema.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try c.encode(tokenizer, forKey: .tokenizer)
        try c.encode(tokenizerSHA256, forKey: .tokenizerSHA256)
        try c.encode(vocabularySize, forKey: .vocabularySize)
        try c.encode(dtype, forKey: .dtype)
        try c.encode(validationFraction, forKey: .validationFraction)
        try c.encode(split, forKey: .split)
        try c.encode(separator, forKey: .separator)
        try c.encode(train, forKey: .train)
        try c.encode(validation, forKey: .validation)
        try c.encode(sources, forKey: .sources)
    }

    /// Pretty-printed JSON with sorted keys, newline-terminated.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }
}
