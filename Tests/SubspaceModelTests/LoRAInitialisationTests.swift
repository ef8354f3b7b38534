import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

@Suite struct LoRAInitialisationTests {
    /// PEFT's PiSSA on llama-tiny's q, v, up and down projections (r 4, alpha 4): the products B·A and
    /// the residual base weights (singular vectors' signs are free, so factors are not compared alone).
    @Test func pissaMatchesPEFT() throws {
        let root = modelFixtures()
        let model = try HFCheckpoint.load(folder: root + "/llama-tiny")
        let adapters = try LoRAAdapters(config: LoRAConfig(rank: 4, alpha: 4, targets: .names(["q_proj", "v_proj", "up_proj", "down_proj"])),
                                        model: model.config)
        try LoRAInitialisation.pissa(adapters, model: model)
        let reference = try SafetensorsFile(path: root + "/llama-tiny-pissa/pissa_init.safetensors")
        #expect(adapters.adapters.count == 8)
        for a in adapters.adapters {
            let prefix = "base_model.model.\(a.module.path)"
            let refBA = BLAS.matmul(try reference.tensor(prefix + ".lora_B.default.weight"), try reference.tensor(prefix + ".lora_A.default.weight"))
            let ourBA = BLAS.matmul(adapters.factor(a, b: true), adapters.factor(a, b: false))
            expectAllClose(ourBA.scalars, refBA.scalars, rtol: 1e-4, atol: 1e-5, "\(a.module.path) B·A")
            let residual = LoRAInitialisation.moduleWeight(model, a.module)
            expectAllClose(residual.scalars, try reference.tensor(prefix + ".base_layer.weight").scalars, rtol: 1e-4, atol: 1e-5,
                           "\(a.module.path) residual")
        }
        // Base + scale·B·A is the original weight again: the model's function is unchanged at step 0.
        let original = try HFCheckpoint.load(folder: root + "/llama-tiny")
        let ids: [Int32] = Array(0..<16).map { Int32($0 * 7 % 256) }
        original.forward(ids: ids, B: 1, T: 16)
        model.adapters = adapters
        model.forward(ids: ids, B: 1, T: 16)
        expectAllClose(model.logits.scalars, original.logits.scalars, rtol: 1e-4, atol: 1e-4, "logits after PiSSA")
    }

    /// svd-delta: scale·B·A equals the factors' product for any alpha, using the leading r components.
    @Test(arguments: [Float(4), 16, 1])
    func svdDeltaReproducesTheFactors(alpha: Float) throws {
        let config = ModelConfig(family: .gpt2, vocabularySize: 16, hiddenSize: 8, layerCount: 1, headCount: 2)
        let adapters = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: alpha, targets: .names(["c_attn", "c_fc"])), model: config)
        var rng = RandomStream(seed: 4)
        var writer = SafetensorsWriter()
        var expected: [String: Tensor] = [:]
        for a in adapters.adapters {
            let B = Tensor.normal([a.module.outFeatures, 3], using: &rng), A = Tensor.normal([3, a.module.inFeatures], using: &rng)
            writer.add(a.module.path + ".lora_B", B)
            writer.add(a.module.path + ".lora_A", A)
            expected[a.module.path] = BLAS.matmul(B.leadingColumns(2), A.view(offset: 0, shape: [2, a.module.inFeatures]))
        }
        let path = NSTemporaryDirectory() + "factors-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writer.write(to: path)
        try LoRAInitialisation.svdDelta(adapters, factors: path)
        for a in adapters.adapters {
            let product = BLAS.matmul(adapters.factor(a, b: true), adapters.factor(a, b: false), alpha: adapters.config.scale)
            expectAllClose(product.scalars, expected[a.module.path]!.scalars, rtol: 1e-5, atol: 1e-5, a.module.path)
        }
    }

    /// After training moves the PiSSA factors, the converted rank-2r adapter on the original base gives the
    /// same function as the trained factors on the residual base.
    @Test func pissaConvertsToAPlainAdapter() throws {
        let root = modelFixtures()
        let residualModel = try HFCheckpoint.load(folder: root + "/llama-tiny")
        let config = LoRAConfig(rank: 4, alpha: 4, targets: .names(["q_proj", "down_proj"]))
        let adapters = try LoRAAdapters(config: config, model: residualModel.config)
        try LoRAInitialisation.pissa(adapters, model: residualModel)
        let initial = Array(UnsafeBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount))
        var rng = RandomStream(seed: 5)
        for i in 0..<adapters.totalCount { adapters.storage.pointer[i] += 0.01 * rng.nextNormal() }  // "training"
        residualModel.adapters = adapters
        let ids: [Int32] = Array(0..<12).map { Int32($0 * 11 % 256) }
        residualModel.forward(ids: ids, B: 1, T: 12)
        let converted = try LoRAInitialisation.pissaAsLoRA(adapters, initial: initial, model: residualModel.config)
        #expect(converted.config.rank == 8 && converted.config.scale == config.scale)
        let original = try HFCheckpoint.load(folder: root + "/llama-tiny")
        original.adapters = converted
        original.forward(ids: ids, B: 1, T: 12)
        expectAllClose(original.logits.scalars, residualModel.logits.scalars, rtol: 1e-4, atol: 1e-4, "converted PiSSA adapter")
    }
}
