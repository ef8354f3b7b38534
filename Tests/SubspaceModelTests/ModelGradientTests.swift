import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// Finite differences through the whole model, for each family, with frozen tensors and with LoRA.
@Suite struct ModelGradientTests {
    /// vocabulary 150: the embedding (and llama's untied head) is cut into several vocabulary slices.
    static func tiny(_ family: ModelFamily, vocabulary: Int = 17) -> ModelConfig {
        ModelConfig(family: family, vocabularySize: vocabulary, hiddenSize: 8, layerCount: 2, headCount: 2,
                    keyValueHeadCount: family == .gpt2 ? 2 : 1, intermediateSize: 12, maxPositions: 8,
                    tiedEmbeddings: family == .gpt2)
    }

    func batch(_ c: ModelConfig) -> (ids: [Int32], targets: [Int32]) {
        var rng = RandomStream(seed: 99)
        let ids = (0..<(2 * 6)).map { _ in Int32(rng.nextInt(below: c.vocabularySize)) }
        var targets = ids.enumerated().map { $0.offset % 6 == 5 ? Int32(-100) : ids[$0.offset + 1] }
        targets[2] = -100  // a masked prompt position
        return (ids, targets)
    }

    /// Loss as a function of the whole flat parameter buffer.
    func loss(_ model: Transformer, _ params: [Float], _ b: (ids: [Int32], targets: [Int32])) -> Double {
        params.withUnsafeBufferPointer { model.parameterStorage.pointer.update(from: $0.baseAddress!, count: $0.count) }
        return Double(model.forward(ids: b.ids, targets: b.targets, B: 2, T: 6)!)
    }

    @Test(arguments: ModelFamily.allCases, [17, 150])
    func wholeModel(family: ModelFamily, vocabulary: Int) {
        let model = Transformer(config: Self.tiny(family, vocabulary: vocabulary))
        #expect(vocabulary < 100 || model.layout.vocabularyRows.count > 1, "\(family): the vocabulary should be sliced")
        model.initialize(seed: 3, std: 0.3)
        // Norm weights away from 1 and biases away from 0, so their gradients are exercised too.
        var rng = RandomStream(seed: 4)
        for e in model.layout.entries where e.shape.count == 1 {
            for i in 0..<e.count { model.parameterStorage.pointer[e.offset + i] += 0.3 * rng.nextNormal() }
        }
        let b = batch(model.config)
        let params = Array(UnsafeBufferPointer(start: model.parameterStorage.pointer, count: model.layout.totalCount))
        _ = loss(model, params, b)
        model.zeroGradients()
        model.backward()
        let grads = Array(UnsafeBufferPointer(start: model.gradientStorage!.pointer, count: model.layout.totalCount))
        for e in model.layout.entries {
            // Restrict the check to one tensor at a time so failures name it.
            let slice = Array(params[e.range]), analytic = Array(grads[e.range])
            if analytic.allSatisfy({ $0 == 0 }) { continue }  // e.g. an embedding row no token uses
            if case .layer(_, .kBias) = e.role, family == .gpt2 {
                // Without rotary positions softmax is invariant to the key bias (it adds q·b to a whole row
                // of scores): the gradient is zero up to rounding, which finite differences cannot resolve.
                #expect(analytic.allSatisfy { abs($0) < 1e-6 }, "\(family) \(e.name) should have a zero gradient")
                continue
            }
            checkGradient("\(family) V=\(vocabulary) \(e.name)", at: slice, analytic: analytic, samples: 12, tolerance: 5e-3) { s in
                var p = params
                p.replaceSubrange(e.range, with: s)
                return loss(model, p, b)
            }
        }
    }

    @Test func frozenTensorsGetNoGradient() {
        let model = Transformer(config: Self.tiny(.llama))
        model.initialize(seed: 5, std: 0.3)
        model.frozen = [.layer(0, .q), .layer(0, .k), .layer(1, .gate)]
        let b = batch(model.config)
        model.forward(ids: b.ids, targets: b.targets, B: 2, T: 6)
        model.backward()
        for role in model.frozen { #expect(model.gradient(role).scalars.allSatisfy { $0 == 0 }, "\(role.name)") }
        #expect(!model.gradient(.layer(0, .v)).scalars.allSatisfy { $0 == 0 })
        #expect(!model.gradient(.layer(1, .up)).scalars.allSatisfy { $0 == 0 })

        // The trainable tensors' gradients are the same as with nothing frozen.
        let reference = Transformer(config: Self.tiny(.llama))
        reference.initialize(seed: 5, std: 0.3)
        reference.forward(ids: b.ids, targets: b.targets, B: 2, T: 6)
        reference.backward()
        for e in model.layout.entries where !model.frozen.contains(e.role) {
            #expect(model.gradient(e.role) == reference.gradient(e.role), "\(e.name)")
        }
    }

    @Test(arguments: [ModelFamily.gpt2, .llama])
    func loraFactors(family: ModelFamily) throws {
        let model = Transformer(config: Self.tiny(family))
        model.initialize(seed: 6, std: 0.3)
        let targets: [String] = family == .gpt2 ? ["c_attn", "c_proj", "c_fc"] : ["q_proj", "v_proj", "up_proj", "down_proj"]
        let adapters = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 3, targets: .names(targets)), model: model.config, seed: 1)
        var rng = RandomStream(seed: 8)
        rng.fillNormal(UnsafeMutableBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount), std: 0.25)
        model.adapters = adapters
        model.frozen = Set(model.layout.entries.map(\.role))
        let b = batch(model.config)
        let start = Array(UnsafeBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount))
        func lossAt(_ f: [Float]) -> Double {
            f.withUnsafeBufferPointer { adapters.storage.pointer.update(from: $0.baseAddress!, count: $0.count) }
            return Double(model.forward(ids: b.ids, targets: b.targets, B: 2, T: 6)!)
        }
        _ = lossAt(start)
        model.zeroGradients()
        model.backward()
        let analytic = Array(UnsafeBufferPointer(start: adapters.gradientStorage.pointer, count: adapters.totalCount))
        checkGradient("\(family) LoRA factors", at: start, analytic: analytic, h: 2e-3, samples: 60, tolerance: 5e-3) { lossAt($0) }
        _ = lossAt(start)

        // Merging B·A into the base gives the same function.
        let withAdapters = model.logits.scalars
        adapters.merge(into: model)
        model.adapters = nil
        model.forward(ids: b.ids, targets: b.targets, B: 2, T: 6)
        let merged = model.logits.scalars
        #expect(zip(withAdapters, merged).allSatisfy { abs($0 - $1) < 1e-4 })
    }

    @Test func unmatchedTargetIsAnError() {
        let config = Self.tiny(.llama)
        #expect(throws: LoRAError.self) { try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 2, targets: .names(["q_proj", "qproj"])), model: config) }
        #expect(throws: LoRAError.self) { try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 2, targets: .pattern(".*nothing.*")), model: config) }
        let picked = try? LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 2, targets: .pattern(#".*\.1\.self_attn\.(q|v)_proj"#)), model: config)
        #expect(picked?.adapters.map(\.module.path) == ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"])
    }

    /// With dropout on (fixed masks: the stream is reseeded before every pass) the gradient is still exact,
    /// and off (not training) the function is the plain one.
    @Test(arguments: [ModelFamily.gpt2, .llama])
    func dropout(family: ModelFamily) {
        let model = Transformer(config: Self.tiny(family))
        model.initialize(seed: 12, std: 0.3)
        let b = batch(model.config)
        let plain = loss(model, Array(UnsafeBufferPointer(start: model.parameterStorage.pointer, count: model.layout.totalCount)), b)
        model.dropout = 0.3
        #expect(loss(model, Array(UnsafeBufferPointer(start: model.parameterStorage.pointer, count: model.layout.totalCount)), b) == plain,
                "not training: no dropout")
        model.training = true
        let params = Array(UnsafeBufferPointer(start: model.parameterStorage.pointer, count: model.layout.totalCount))
        func lossWithMasks(_ p: [Float]) -> Double {
            model.reseedDropout(seed: 5, step: 2)
            return loss(model, p, b)
        }
        let dropped = lossWithMasks(params)
        #expect(dropped != plain, "training: dropout changes the loss")
        model.zeroGradients()
        model.backward()
        let grads = Array(UnsafeBufferPointer(start: model.gradientStorage!.pointer, count: model.layout.totalCount))
        for role in [TensorRole.tokenEmbedding, .layer(0, .o), .layer(1, .down), .layer(0, .q), .layer(1, .norm2Weight)] {
            let e = model.layout[role]
            checkGradient("\(family) dropout \(e.name)", at: Array(params[e.range]), analytic: Array(grads[e.range]), samples: 12, tolerance: 5e-3) { s in
                var p = params
                p.replaceSubrange(e.range, with: s)
                return lossWithMasks(p)
            }
        }
    }

    /// LoRA dropout (masks fixed by reseeding before each pass): exact factor gradients.
    @Test func loraDropout() throws {
        let model = Transformer(config: Self.tiny(.llama))
        model.initialize(seed: 6, std: 0.3)
        let adapters = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 3, targets: .names(["q_proj", "down_proj"]), dropout: 0.3),
                                        model: model.config, seed: 1)
        var rng = RandomStream(seed: 8)
        rng.fillNormal(UnsafeMutableBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount), std: 0.25)
        adapters.training = true
        model.adapters = adapters
        model.frozen = Set(model.layout.entries.map(\.role))
        let b = batch(model.config)
        let start = Array(UnsafeBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount))
        func lossAt(_ f: [Float]) -> Double {
            f.withUnsafeBufferPointer { adapters.storage.pointer.update(from: $0.baseAddress!, count: $0.count) }
            adapters.reseedDropout(seed: 3, step: 1)
            return Double(model.forward(ids: b.ids, targets: b.targets, B: 2, T: 6)!)
        }
        _ = lossAt(start)
        model.zeroGradients()
        model.backward()
        let analytic = Array(UnsafeBufferPointer(start: adapters.gradientStorage.pointer, count: adapters.totalCount))
        checkGradient("LoRA dropout factors", at: start, analytic: analytic, h: 2e-3, samples: 40, tolerance: 5e-3) { lossAt($0) }
    }
}
