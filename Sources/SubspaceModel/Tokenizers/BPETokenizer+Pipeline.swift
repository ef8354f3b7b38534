import Foundation

extension BPETokenizer {
    /// Encoding for the non-GPT-2 shapes, in HF's order: added tokens with `normalized: false` cut from the
    /// raw text; each stretch between them normalized; the normalized added tokens cut from that; each
    /// remaining stretch pre-tokenized and its pieces run through BPE.
    func encodeWithPipeline(_ text: String) -> [Int] {
        var text = text
        return text.withUTF8 { bytes in
            var output = [Int]()
            output.reserveCapacity(bytes.count / 3)
            var encoder = BPEEncoder(self)
            var pieces: [TextPiece] = []
            if rawTokenMatcher.isEmpty {
                if !bytes.isEmpty { pieces.append(.text(0..<bytes.count, startsSegment: true)) }
            } else {
                rawTokenMatcher.split(bytes, 0..<bytes.count, into: &pieces)
            }
            for piece in pieces {
                switch piece {
                case .added(let id): output.append(id)
                case .text(let range, _):
                    encoder.encodeRawStretch(UnsafeBufferPointer(rebasing: bytes[range]), atOrigin: range.lowerBound == 0, into: &output)
                }
            }
            return output
        }
    }

    /// Whether `encode(_:threads:)` may cut the text at the line breaks `safeCut` finds: the pre-tokenizer
    /// tiles the text with a pattern that never joins across such a break (GPT-2's, Qwen2's, Llama-3's),
    /// and the normalizer, if any, works scalar by scalar (normalization forms, lowercase).
    var encodesInParallel: Bool {
        guard let pipeline else { return true }
        guard pipeline.preTokenizer.tilingPattern != nil else { return false }
        guard let normalizer = pipeline.normalizer else { return true }
        return normalizedTokenMatcher.isEmpty && normalizer.steps.allSatisfy {
            switch $0 {
            case .nfc, .nfkc, .nfd, .nfkd, .lowercase: true
            default: false
            }
        }
    }
}

extension BPEEncoder {
    /// One stretch of raw text between raw-matched added tokens: normalized, cut at normalized added
    /// tokens, pre-tokenized and encoded. `atOrigin`: the stretch starts the input.
    mutating func encodeRawStretch(_ raw: UnsafeBufferPointer<UInt8>, atOrigin: Bool, into output: inout [Int]) {
        let pipeline = tokenizer.pipeline!
        guard let normalizer = pipeline.normalizer, !normalizer.isIdentity else {
            encodeNormalized(raw, atOrigin: atOrigin, into: &output)
            return
        }
        let normalized = normalizer.apply(raw)
        normalized.withUnsafeBufferPointer { encodeNormalized($0, atOrigin: atOrigin, into: &output) }
    }

    private mutating func encodeNormalized(_ bytes: UnsafeBufferPointer<UInt8>, atOrigin: Bool, into output: inout [Int]) {
        if tokenizer.normalizedTokenMatcher.isEmpty {
            encodeStretch(bytes, atOrigin: atOrigin, into: &output)
            return
        }
        var pieces: [TextPiece] = []
        tokenizer.normalizedTokenMatcher.split(bytes, 0..<bytes.count, into: &pieces)
        for piece in pieces {
            switch piece {
            case .added(let id): output.append(id)
            case .text(let range, _):
                encodeStretch(UnsafeBufferPointer(rebasing: bytes[range]), atOrigin: atOrigin && range.lowerBound == 0, into: &output)
            }
        }
    }

    /// Pre-tokenizes one normalized stretch without added tokens and encodes its pieces.
    mutating func encodeStretch(_ bytes: UnsafeBufferPointer<UInt8>, atOrigin: Bool, into output: inout [Int]) {
        if bytes.isEmpty { return }
        let preTokenizer = tokenizer.pipeline!.preTokenizer
        if let pattern = preTokenizer.tilingPattern {
            pattern.forEachTile(bytes) { encodePiece(UnsafeBufferPointer(rebasing: bytes[$0]), into: &output) }
        } else if preTokenizer.isWholeStretch {
            encodePiece(bytes, into: &output)
        } else {
            for piece in preTokenizer.pieces(Array(bytes), atOrigin: atOrigin) {
                piece.withUnsafeBufferPointer { encodePiece($0, into: &output) }
            }
        }
    }
}
