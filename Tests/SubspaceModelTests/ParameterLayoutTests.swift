import Testing
@testable import SubspaceModel

/// The layout's blocks: the vocabulary-sized tensors are cut into slices of whole rows no larger than
/// about a layer block, and the blocks tile the flat buffer without moving any tensor.
@Suite struct ParameterLayoutTests {
    static let shapes: [(String, ModelConfig)] = [
        ("gpt2 124M", ModelConfig(family: .gpt2, vocabularySize: 50257, hiddenSize: 768, layerCount: 12, headCount: 12, maxPositions: 1024)),
        ("llama untied", ModelConfig(family: .llama, vocabularySize: 32000, hiddenSize: 512, layerCount: 4, headCount: 8,
                                     keyValueHeadCount: 4, intermediateSize: 1376, maxPositions: 256)),
        ("qwen2 tied", ModelConfig(family: .qwen2, vocabularySize: 1000, hiddenSize: 64, layerCount: 2, headCount: 4,
                                   keyValueHeadCount: 2, intermediateSize: 128, maxPositions: 64, tiedEmbeddings: true)),
        ("tiny", ModelGradientTests.tiny(.llama)),
    ]

    @Test func blocksTileTheBufferAndNoneIsLargerThanALayer() {
        for (name, c) in Self.shapes {
            let layout = ParameterLayout(config: c)
            let blocks = layout.blockRanges
            #expect(blocks.first?.lowerBound == 0 && blocks.last?.upperBound == layout.totalCount, "\(name)")
            for (a, b) in zip(blocks, blocks.dropFirst()) { #expect(a.upperBound == b.lowerBound, "\(name): blocks \(a) \(b)") }
            let layer = layout.layerRanges[0].count
            for (b, r) in blocks.enumerated() {
                #expect(r.count <= layer + c.hiddenSize + ParameterLayout.alignment, "\(name): block \(b) of \(r.count) > layer \(layer)")
            }
            // Rows cover the vocabulary in order; the slices' blocks hold exactly those rows.
            #expect(layout.vocabularyRows.first?.lowerBound == 0 && layout.vocabularyRows.last?.upperBound == c.vocabularySize)
            for role in [TensorRole.tokenEmbedding] + (c.tiedEmbeddings ? [] : [.outputHead]) {
                let e = layout[role]
                for (s, b) in layout.sliceBlocks(of: role).enumerated() {
                    #expect(blocks[b].lowerBound == e.offset + layout.vocabularyRows[s].lowerBound * c.hiddenSize, "\(name) \(role.name) slice \(s)")
                    #expect(layout.entries(inBlock: b).contains { $0.role == role })
                    #expect(layout.blockKinds[b] == .vocabularySlice)
                }
            }
            for l in 0..<c.layerCount { #expect(blocks[layout.layerBlock(l)] == layout.layerRanges[l]) }
            #expect(layout.entries(inBlock: layout.finalNormBlock).map(\.role).contains(.finalNormWeight))
            // Every element of every tensor lies in the block(s) the layout names for it.
            for e in layout.entries {
                let covered = layout.blocks(of: e.role).reduce(0) { $0 + e.range.clamped(to: blocks[$1]).count }
                #expect(covered == e.count, "\(name): \(e.name)")
            }
        }
        #expect(ParameterLayout(config: Self.shapes[0].1).vocabularyRows.count == 6, "GPT-2 124M: ceil(50257·768 / 7.1M) slices")
        #expect(ParameterLayout(config: Self.shapes[3].1).vocabularyRows.count == 1, "a vocabulary smaller than a layer is one block")
    }
}
