import Foundation

extension BPETokenizer {
    /// Texts shorter than this are encoded on the calling thread.
    static let minimumParallelBytes = 1 << 20

    /// The same ids as `encode(text)`, with the text cut into up to `threads` parts encoded concurrently.
    ///
    /// Added tokens are cut out of the whole text first. A stretch of text is then cut only just after a
    /// `\n` that has a printable ASCII character (`!`…`~`) on both sides: the pre-tokenizer ends a piece
    /// before such a `\n` (alternatives 1–4 never take whitespace after their start), takes the `\n` alone
    /// whether a printable character or the end of the text follows it, and never looks behind a position,
    /// so the pieces — and thus the ids — on either side are those of the whole text. Later parts of a
    /// stretch get no prefix space, as in one-shot encoding. A text without such line breaks is encoded in
    /// fewer parts.
    public func encode(_ text: String, threads: Int) -> [Int] {
        encode(text, threads: threads, minimumBytes: Self.minimumParallelBytes)
    }

    /// `encode(_:threads:)` with parts of at least `minimumBytes / 2` (tests cut small texts finely).
    func encode(_ text: String, threads: Int, minimumBytes: Int) -> [Int] {
        guard threads > 1, text.utf8.count >= minimumBytes, encodesInParallel else { return encode(text) }
        var text = text
        return text.withUTF8 { bytes in
            let parts = parallelParts(bytes, threads: threads, minimumBytes: minimumBytes)
            if parts.count == 1 { return encode(parts[0], bytes) }
            let results = UnsafeMutableBufferPointer<[Int]>.allocate(capacity: parts.count)
            results.initialize(repeating: [])
            defer {
                results.deinitialize()
                results.deallocate()
            }
            // Each iteration writes only its own slot, and `bytes` is read-only while they run.
            let shared = SharedBuffers(results: results, bytes: bytes)
            DispatchQueue.concurrentPerform(iterations: parts.count) { p in
                shared.results[p] = encode(parts[p], shared.bytes)
            }
            var output = [Int]()
            output.reserveCapacity(results.reduce(0) { $0 + $1.count })
            for part in results { output += part }
            return output
        }
    }

    /// Encodes one part: a list of pieces, with its own cache.
    private func encode(_ pieces: [TextPiece], _ bytes: UnsafeBufferPointer<UInt8>) -> [Int] {
        var output = [Int]()
        output.reserveCapacity(pieces.reduce(0) { total, piece in
            if case .text(let range, _) = piece { return total + range.count / 3 }
            return total + 1
        })
        var encoder = BPEEncoder(self)
        for piece in pieces {
            switch piece {
            case .added(let id):
                output.append(id)
            case .text(let range, let startsSegment):
                if pipeline != nil {
                    encoder.encodeRawStretch(UnsafeBufferPointer(rebasing: bytes[range]), atOrigin: range.lowerBound == 0, into: &output)
                } else {
                    encoder.encode(UnsafeBufferPointer(rebasing: bytes[range]), startsSegment: startsSegment, into: &output)
                }
            }
        }
        return output
    }

    /// The pieces of the text grouped into about `threads` parts of similar byte counts.
    func parallelParts(_ bytes: UnsafeBufferPointer<UInt8>, threads: Int, minimumBytes: Int) -> [[TextPiece]] {
        let partBytes = max(1, minimumBytes / 2, (bytes.count + threads - 1) / threads)
        var parts: [[TextPiece]] = [[]]
        var partStart = 0
        func append(_ piece: TextPiece, endingAt end: Int) {
            parts[parts.count - 1].append(piece)
            if end - partStart >= partBytes {
                parts.append([])
                partStart = end
            }
        }
        for piece in splitAddedTokens(bytes) {
            guard case .text(let range, let startsSegment) = piece else {
                append(piece, endingAt: partStart)
                continue
            }
            var start = range.lowerBound, first = startsSegment
            while let cut = Self.safeCut(bytes, after: partStart + partBytes, in: start..<range.upperBound) {
                append(.text(start..<cut, startsSegment: first), endingAt: cut)
                start = cut
                first = false
            }
            append(.text(start..<range.upperBound, startsSegment: first), endingAt: range.upperBound)
        }
        if parts.last!.isEmpty { parts.removeLast() }
        return parts.isEmpty ? [[]] : parts
    }

    /// The first position at or after `target`, strictly inside `range`, just after a `\n` with printable
    /// ASCII on both sides; nil if there is none.
    static func safeCut(_ bytes: UnsafeBufferPointer<UInt8>, after target: Int, in range: Range<Int>) -> Int? {
        var i = max(target, range.lowerBound + 2)
        while i < range.upperBound {
            if bytes[i - 1] == 0x0A, (0x21...0x7E).contains(bytes[i]), (0x21...0x7E).contains(bytes[i - 2]) { return i }
            i += 1
        }
        return nil
    }
}

/// The buffers `encode(_:threads:)` shares with its worker threads; see the comment where it is used.
private struct SharedBuffers: @unchecked Sendable {
    let results: UnsafeMutableBufferPointer<[Int]>
    let bytes: UnsafeBufferPointer<UInt8>
}
