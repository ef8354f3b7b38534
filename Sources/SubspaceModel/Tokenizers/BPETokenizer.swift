import Foundation

/// A BPE tokenizer as HF tokenizers describes it in a `tokenizer.json`, in the shapes GPT-2, Qwen2, Llama-3
/// and Llama-2 (SentencePiece-converted) ship. Encodes id for id as HF tokenizers 0.2x does.
///
/// The GPT-2 shape (no normalizer, pre-tokenizer and decoder `ByteLevel`) is described below. Other shapes
/// run the `Pipeline`: the normalizer (`TextNormalizer`) on each stretch between raw-matched added tokens,
/// the normalized added tokens, the pre-tokenizer (`PreTokenizerPipeline`: `Split` with a regex — Qwen2's
/// and Llama-3's patterns matched by hand —, `ByteLevel`, `Metaspace`, `Digits`), then BPE over bytes
/// (when a ByteLevel step maps the text to the byte alphabet) or over Unicode scalars with `byte_fallback`
/// (`<0x..>` tokens) and `unk_token`; decoding runs the `decoder` steps (`TokenDecoderPipeline`). The
/// `post_processor` (`TemplatePostProcessor`, e.g. Llama's BOS) applies only in
/// `encode(_:addingSpecialTokens:)`. Any component outside the supported set is refused at load time,
/// naming it.
///
/// Encoding, in HF's order:
/// 1. Added tokens (`added_tokens`, e.g. `<|endoftext|>`) are cut out of the raw text wherever they occur,
///    leftmost-longest, honouring `lstrip`, `rstrip` and `single_word`; they become their ids. Tokens with
///    `normalized: false` are cut first, then the others from what is left (the same text here, as no
///    normalizer is supported).
/// 2. Each stretch of text between them gets a leading space if `add_prefix_space` is set and it does not
///    start with one, and is split by `GPT2PreTokenizer` (unless `use_regex` is false).
/// 3. Each piece's bytes become byte-level symbols (`ByteLevelAlphabet`), which merge pairwise, lowest
///    merge rank first and leftmost first among equal ranks, until no adjacent pair has a merge. With
///    `ignore_merges` a piece that is itself in the vocabulary is taken whole.
///
/// Decoding maps each id to its token (added tokens to their content), each token's characters back to
/// bytes (a token with a character outside the byte alphabet, like most added tokens, contributes its own
/// UTF-8), and the bytes to text. Encoding adds no template tokens (a `post_processor` is ignored).
///
/// Speed: ids are `Int32`s, merges a hash table keyed by the packed pair, and every pre-token's ids are
/// cached per encoding session, so a warm encoder spends a hash and a compare per piece.
/// `encode(_:threads:)` splits large texts at line breaks where the pre-tokenizer is known to break anyway.
public struct BPETokenizer: Tokenizer {
    public let vocabularySize: Int
    public let endOfText: Int?
    public let specialTokens: [String: Int]
    /// `added_tokens` in file order.
    public let addedTokens: [AddedToken]
    /// `add_prefix_space` of the ByteLevel pre-tokenizer.
    public let addsPrefixSpace: Bool
    /// `ignore_merges` of the BPE model.
    public let ignoresMerges: Bool
    /// `use_regex` of the ByteLevel pre-tokenizer: false means each stretch of text is one piece.
    public let splitsWithRegex: Bool
    public var mergeCount: Int { merges.count }

    /// Model vocabulary: byte-level token string → id.
    let vocabulary: [String: Int]
    /// id → token string (added tokens' content win over the model's), nil in gaps.
    let tokens: [String?]
    let merges: BPEMergeTable
    /// The symbol id of each byte's character, -1 where the vocabulary lacks it.
    let byteIDs: [Int32]
    let allBytesInVocabulary: Bool
    /// For bytes missing from the vocabulary: `byte_fallback` tokens (`<0xC4>` `<0xA0>` for the UTF-8 of the
    /// byte's character, as HF does), else nothing and `unknownID` applies.
    let fallbackIDs: [[Int32]?]
    let unknownID: Int32?
    let fusesUnknown: Bool
    /// With `ignore_merges`: raw bytes of every vocabulary token → its id.
    let wholePieces: [[UInt8]: Int32]
    /// Decoding: the bytes of id i are `decodedBytes[decodedStart[i]..<decodedStart[i + 1]]`.
    let decodedBytes: [UInt8]
    let decodedStart: [Int]
    let isKnown: [Bool]
    let isSpecial: [Bool]
    let rawTokenMatcher: AddedTokenMatcher
    let normalizedTokenMatcher: AddedTokenMatcher
    /// nil for the GPT-2 shape.
    let pipeline: Pipeline?
    public let postProcessor: TemplatePostProcessor
    /// Whether BPE runs over bytes (the byte-level alphabet) rather than Unicode scalars.
    let isByteLevelModel: Bool
    /// Scalar-level models: the id of each single-scalar token (plane 0 by table, others by dictionary).
    let scalarIDs: [Int32]
    let astralScalarIDs: [UInt32: Int32]
    /// Scalar-level models with `byte_fallback`: the id of `<0xAB>` for each byte, -1 where missing.
    let rawFallbackIDs: [Int32]

    /// The normalizer, pre-tokenizer and decoder of a non-GPT-2 shape.
    struct Pipeline: Sendable {
        var normalizer: TextNormalizer?
        var preTokenizer: PreTokenizerPipeline
        var decoder: TokenDecoderPipeline?
    }

    /// An added token (`added_tokens` entry of `tokenizer.json`).
    public struct AddedToken: Sendable, Equatable {
        public var id: Int
        public var content: String
        public var isSpecial: Bool
        /// Matches only where not inside a word (no letter, digit or `_` on either side).
        public var singleWord: Bool
        /// Swallows the whitespace on its left.
        public var stripsLeft: Bool
        /// Swallows the whitespace on its right.
        public var stripsRight: Bool
        /// Matched after normalization (false: on the raw text, first).
        public var normalized: Bool

        public init(id: Int, content: String, isSpecial: Bool = true, singleWord: Bool = false,
                    stripsLeft: Bool = false, stripsRight: Bool = false, normalized: Bool = false) {
            self.id = id
            self.content = content
            self.isSpecial = isSpecial
            self.singleWord = singleWord
            self.stripsLeft = stripsLeft
            self.stripsRight = stripsRight
            self.normalized = normalized
        }
    }

    /// The id of a token string as the vocabulary writes it (byte-level alphabet, e.g. `"Ġthe"`), or of
    /// an added token's content.
    public func id(forToken token: String) -> Int? {
        if let added = addedTokens.last(where: { $0.content == token }) { return added.id }
        return vocabulary[token]
    }

    /// The token string of an id (byte-level alphabet for model tokens), nil if the id is unknown.
    public func token(forID id: Int) -> String? { tokens.indices.contains(id) ? tokens[id] : nil }

    // MARK: Encoding

    public func encode(_ text: String) -> [Int] {
        if pipeline != nil { return encodeWithPipeline(text) }
        var text = text
        return text.withUTF8 { bytes in
            var output = [Int]()
            output.reserveCapacity(bytes.count / 3)
            var encoder = BPEEncoder(self)
            for piece in splitAddedTokens(bytes) {
                switch piece {
                case .added(let id):
                    output.append(id)
                case .text(let range, let startsSegment):
                    encoder.encode(UnsafeBufferPointer(rebasing: bytes[range]), startsSegment: startsSegment, into: &output)
                }
            }
            return output
        }
    }

    /// `encode(text)` with the post-processor's special tokens around it (HF's `add_special_tokens`).
    public func encode(_ text: String, addingSpecialTokens: Bool) -> [Int] {
        let ids = encode(text)
        return addingSpecialTokens ? postProcessor.prefix + ids + postProcessor.suffix : ids
    }

    /// The pieces the pre-tokenizer makes of `text` (after any prefix space, and the normalizer), for
    /// inspection. Added tokens are not treated specially here.
    public func preTokenize(_ text: String) -> [String] {
        if let pipeline {
            let normalized = Array(text.utf8).withUnsafeBufferPointer { pipeline.normalizer?.apply($0) ?? Array($0) }
            return pipeline.preTokenizer.pieces(normalized, atOrigin: true).map { String(decoding: $0, as: UTF8.self) }
        }
        let text = addsPrefixSpace && !text.isEmpty && !text.hasPrefix(" ") ? " " + text : text
        return splitsWithRegex ? GPT2PreTokenizer.split(text) : (text.isEmpty ? [] : [text])
    }

    // MARK: Decoding

    public func decodeBytes(_ ids: [Int]) throws -> [UInt8] { try decodeBytes(ids, skippingSpecialTokens: false) }

    public func decode(_ ids: [Int]) throws -> String { try decode(ids, skippingSpecialTokens: false) }

    /// The bytes of `ids`; with `skippingSpecialTokens` the special added tokens contribute nothing. With a
    /// decoder pipeline, byte-fallback and byte-level bytes come out as they are, valid UTF-8 or not.
    public func decodeBytes(_ ids: [Int], skippingSpecialTokens: Bool) throws -> [UInt8] {
        if pipeline != nil { return try decodeWithPipeline(ids, skippingSpecialTokens: skippingSpecialTokens, exact: false) }
        var output = [UInt8]()
        output.reserveCapacity(ids.count * 4)
        try decodedBytes.withUnsafeBufferPointer { table in
            for id in ids {
                guard id >= 0, id < vocabularySize, isKnown[id] else {
                    throw TokenizerError.unknownID(id, vocabularySize: vocabularySize)
                }
                if skippingSpecialTokens && isSpecial[id] { continue }
                output.append(contentsOf: UnsafeBufferPointer(rebasing: table[decodedStart[id]..<decodedStart[id + 1]]))
            }
        }
        return output
    }

    /// The text of `ids` (invalid UTF-8 becomes U+FFFD); with `skippingSpecialTokens` the special added
    /// tokens are left out.
    public func decode(_ ids: [Int], skippingSpecialTokens: Bool) throws -> String {
        if pipeline != nil {
            return String(decoding: try decodeWithPipeline(ids, skippingSpecialTokens: skippingSpecialTokens, exact: true), as: UTF8.self)
        }
        return String(decoding: try decodeBytes(ids, skippingSpecialTokens: skippingSpecialTokens), as: UTF8.self)
    }

    /// HF's `decode`: token strings (added tokens' content included) through the decoder steps, or joined
    /// with spaces when there is no decoder.
    func decodeWithPipeline(_ ids: [Int], skippingSpecialTokens: Bool, exact: Bool) throws -> [UInt8] {
        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(ids.count)
        for id in ids {
            guard id >= 0, id < vocabularySize, isKnown[id], let token = tokens[id] else {
                throw TokenizerError.unknownID(id, vocabularySize: vocabularySize)
            }
            if skippingSpecialTokens && isSpecial[id] { continue }
            pieces.append(Array(token.utf8))
        }
        if let decoder = pipeline?.decoder { return decoder.decode(pieces, exact: exact) }
        return Array(pieces.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ").utf8)
    }
}

/// A stretch of the input after added tokens are cut out.
enum TextPiece: Equatable {
    case added(Int)
    /// Byte range; `startsSegment` is false for the later parts of a stretch cut for parallel encoding
    /// (they get no prefix space).
    case text(Range<Int>, startsSegment: Bool)
}

extension BPETokenizer {
    /// Cuts added tokens out of `bytes`: the raw-matched ones first, then the normalized ones from the rest.
    func splitAddedTokens(_ bytes: UnsafeBufferPointer<UInt8>) -> [TextPiece] {
        var pieces: [TextPiece] = []
        if rawTokenMatcher.isEmpty && normalizedTokenMatcher.isEmpty {
            if !bytes.isEmpty { pieces.append(.text(0..<bytes.count, startsSegment: true)) }
            return pieces
        }
        var first: [TextPiece] = []
        rawTokenMatcher.split(bytes, 0..<bytes.count, into: &first)
        for piece in first {
            if case .text(let range, _) = piece {
                normalizedTokenMatcher.split(bytes, range, into: &pieces)
            } else {
                pieces.append(piece)
            }
        }
        return pieces
    }
}

/// One thread's encoding state: the pre-token cache and scratch space for the merge loop.
struct BPEEncoder {
    let tokenizer: BPETokenizer
    var cache = PreTokenCache()
    var symbols: [Int32] = []
    var ranks: [Int32] = []
    var merged: [Int32] = []
    var heap: [UInt64] = []
    var next: [Int32] = []
    var previous: [Int32] = []
    /// Words longer than this merge with a priority queue instead of rescanning the pairs each step.
    static let linearMergeLimit = 128

    init(_ tokenizer: BPETokenizer) { self.tokenizer = tokenizer }

    /// Encodes one stretch of text without added tokens.
    mutating func encode(_ bytes: UnsafeBufferPointer<UInt8>, startsSegment: Bool, into output: inout [Int]) {
        if bytes.isEmpty { return }
        if startsSegment && tokenizer.addsPrefixSpace && bytes[0] != 0x20 {
            let prefixed = [0x20] + Array(bytes)
            prefixed.withUnsafeBufferPointer { encode($0, startsSegment: false, into: &output) }
            return
        }
        guard tokenizer.splitsWithRegex else {
            encodePiece(bytes, into: &output)
            return
        }
        GPT2PreTokenizer.forEachPiece(bytes) { encodePiece(UnsafeBufferPointer(rebasing: bytes[$0]), into: &output) }
    }

    /// Appends the ids of one pre-token.
    @inline(__always)
    mutating func encodePiece(_ piece: UnsafeBufferPointer<UInt8>, into output: inout [Int]) {
        if piece.count == 1 && tokenizer.allBytesInVocabulary {
            output.append(Int(tokenizer.byteIDs[Int(piece[0])]))
            return
        }
        let cacheable = piece.count <= PreTokenCache.maximumKeyLength
        let hash = cacheable ? PreTokenCache.hash(piece) : 0
        if cacheable && cache.appendIDs(of: piece, hash: hash, to: &output) { return }
        bytePairEncode(piece)
        for id in symbols { output.append(Int(id)) }
        if cacheable { cache.insert(piece, hash: hash, ids: symbols[...]) }
    }

    /// Leaves the BPE ids of `piece` in `symbols`.
    mutating func bytePairEncode(_ piece: UnsafeBufferPointer<UInt8>) {
        symbols.removeAll(keepingCapacity: true)
        if tokenizer.ignoresMerges, let whole = tokenizer.wholePieces[Array(piece)] {
            symbols.append(whole)
            return
        }
        initialSymbols(piece)
        if symbols.count <= Self.linearMergeLimit { mergeLinear() } else { mergeWithHeap() }
    }

    /// One symbol per byte; bytes missing from the vocabulary go through byte fallback or the unknown
    /// token (fused when `fuse_unk`), or are dropped when there is neither (all as HF does).
    mutating func initialSymbols(_ piece: UnsafeBufferPointer<UInt8>) {
        if !tokenizer.isByteLevelModel { return initialScalarSymbols(piece) }
        let byteIDs = tokenizer.byteIDs
        if tokenizer.allBytesInVocabulary {
            for b in piece { symbols.append(byteIDs[Int(b)]) }
            return
        }
        var pendingUnknown = false
        for b in piece {
            let id = byteIDs[Int(b)]
            if id >= 0 || tokenizer.fallbackIDs[Int(b)] != nil {
                if pendingUnknown, let unknown = tokenizer.unknownID { symbols.append(unknown) }
                pendingUnknown = false
                if id >= 0 { symbols.append(id) } else { symbols.append(contentsOf: tokenizer.fallbackIDs[Int(b)]!) }
            } else if let unknown = tokenizer.unknownID {
                if pendingUnknown && !tokenizer.fusesUnknown { symbols.append(unknown) }
                pendingUnknown = true
            }
        }
        if pendingUnknown, let unknown = tokenizer.unknownID { symbols.append(unknown) }
    }

    /// One symbol per Unicode scalar (HF's `merge_word`): the scalar's token, else its bytes' `<0xAB>`
    /// tokens with `byte_fallback`, else the unknown token (runs fused with `fuse_unk`). As in HF, a pending
    /// unknown token is not written before byte-fallback tokens, only before the next known scalar or at
    /// the end.
    mutating func initialScalarSymbols(_ piece: UnsafeBufferPointer<UInt8>) {
        var pendingUnknown = false
        var i = 0
        while i < piece.count {
            let lead = piece[i]
            let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
            let end = min(piece.count, i + length)
            var value: UInt32
            switch length {
            case 1: value = UInt32(lead)
            case 2: value = UInt32(lead & 0x1F) << 6 | UInt32(piece[i + 1] & 0x3F)
            case 3: value = UInt32(lead & 0x0F) << 12 | UInt32(piece[i + 1] & 0x3F) << 6 | UInt32(piece[i + 2] & 0x3F)
            default:
                value = UInt32(lead & 0x07) << 18 | UInt32(piece[i + 1] & 0x3F) << 12
                    | UInt32(piece[i + 2] & 0x3F) << 6 | UInt32(piece[i + 3] & 0x3F)
            }
            let id = value < 0x10000 ? tokenizer.scalarIDs[Int(value)] : tokenizer.astralScalarIDs[value] ?? -1
            if id >= 0 {
                if pendingUnknown, let unknown = tokenizer.unknownID { symbols.append(unknown) }
                pendingUnknown = false
                symbols.append(id)
            } else if !tokenizer.rawFallbackIDs.isEmpty, (i..<end).allSatisfy({ tokenizer.rawFallbackIDs[Int(piece[$0])] >= 0 }) {
                for j in i..<end { symbols.append(tokenizer.rawFallbackIDs[Int(piece[j])]) }
            } else if let unknown = tokenizer.unknownID {
                if pendingUnknown && !tokenizer.fusesUnknown { symbols.append(unknown) }
                pendingUnknown = true
            }
            i = end
        }
        if pendingUnknown, let unknown = tokenizer.unknownID { symbols.append(unknown) }
    }

    /// Merges `symbols` in place: keeps the rank of every adjacent pair, and at each step merges the
    /// leftmost pair of lowest rank and refreshes the two pairs around it. O(n²) in the worst case, which
    /// for the short pieces of natural text beats a priority queue.
    mutating func mergeLinear() {
        var count = symbols.count
        if count < 2 { return }
        let merges = tokenizer.merges
        ranks.removeAll(keepingCapacity: true)
        merged.removeAll(keepingCapacity: true)
        for i in 0..<(count - 1) {
            let m = merges.lookup(symbols[i], symbols[i + 1])
            ranks.append(m?.rank ?? .max)
            merged.append(m?.merged ?? -1)
        }
        while true {
            var best = Int32.max, at = -1
            for i in 0..<(count - 1) where ranks[i] < best { best = ranks[i]; at = i }
            if at < 0 { break }
            symbols[at] = merged[at]
            // Remove symbol at+1 and the pair (at+1, at+2); pairs (at-1, at) and (at, at+1) change.
            for i in (at + 1)..<(count - 1) { symbols[i] = symbols[i + 1] }
            for i in (at + 1)..<max(at + 1, count - 2) { ranks[i] = ranks[i + 1]; merged[i] = merged[i + 1] }
            count -= 1
            if at < count - 1 {
                let m = merges.lookup(symbols[at], symbols[at + 1])
                ranks[at] = m?.rank ?? .max
                merged[at] = m?.merged ?? -1
            }
            if at > 0 {
                let m = merges.lookup(symbols[at - 1], symbols[at])
                ranks[at - 1] = m?.rank ?? .max
                merged[at - 1] = m?.merged ?? -1
            }
        }
        symbols.removeLast(symbols.count - count)
    }

    /// The same merges as `mergeLinear`, in O(n log n): a min-heap of (rank, position) over a linked list
    /// of symbols, skipping entries whose pair has since changed — HF's `Word::merge_all` without dropout.
    mutating func mergeWithHeap() {
        let count = symbols.count
        if count < 2 { return }
        let merges = tokenizer.merges
        next = (0..<count).map { Int32($0 + 1 < count ? $0 + 1 : -1) }
        previous = (0..<count).map { Int32($0 - 1) }
        var alive = [Bool](repeating: true, count: count)
        heap.removeAll(keepingCapacity: true)
        for i in 0..<(count - 1) {
            if let m = merges.lookup(symbols[i], symbols[i + 1]) { push(m.rank, i) }
        }
        while let top = pop() {
            let rank = Int32(truncatingIfNeeded: top >> 32), at = Int(truncatingIfNeeded: top & 0xFFFF_FFFF)
            guard alive[at], next[at] >= 0 else { continue }
            let right = Int(next[at])
            guard let m = merges.lookup(symbols[at], symbols[right]), m.rank == rank else { continue }
            symbols[at] = m.merged
            alive[right] = false
            next[at] = next[right]
            if next[right] >= 0 { previous[Int(next[right])] = Int32(at) }
            if previous[at] >= 0, let left = merges.lookup(symbols[Int(previous[at])], symbols[at]) {
                push(left.rank, Int(previous[at]))
            }
            if next[at] >= 0, let after = merges.lookup(symbols[at], symbols[Int(next[at])]) {
                push(after.rank, at)
            }
        }
        var write = 0, i = 0
        while i >= 0 {
            symbols[write] = symbols[i]
            write += 1
            i = Int(next[i])
        }
        symbols.removeLast(count - write)
    }

    private mutating func push(_ rank: Int32, _ position: Int) {
        heap.append(UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(position))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[parent] <= heap[child] { break }
            heap.swapAt(parent, child)
            child = parent
        }
    }

    private mutating func pop() -> UInt64? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return top }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left] < heap[smallest] { smallest = left }
            if right < heap.count && heap[right] < heap[smallest] { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
