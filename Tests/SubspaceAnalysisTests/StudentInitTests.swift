import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceAnalysis

/// An svd-delta student at step 0 is the base plus the teacher's rank-R change: its forward equals the
/// forward of the base with ΔW_R merged, for any alpha.
@Suite struct StudentInitTests {
    @Test(arguments: [ModelFamily.gpt2, .llama], [Float(16), 3])
    func svdDeltaStudentEqualsMergedRankRTeacher(family: ModelFamily, alpha: Float) throws {
        let scratch = Scratch()
        let config = family == .gpt2 ? Fixture.gpt2 : Fixture.llama
        let folders = try Fixture.folders(in: scratch, config)
        let output = scratch.folder("analysis")
        let rank = 3
        _ = try LocalCluster.run(size: 1) { comm in
            try DeltaAnalyzer.analyzeFolders(base: folders.base, tuned: folders.tuned, output: output,
                                             options: DeltaAnalysisOptions(rank: rank), communicator: comm)
        }
        let targets = family == .gpt2 ? ["c_attn", "c_proj", "c_fc"] : ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        let student = try HFCheckpoint.load(folder: folders.base)
        let adapters = try LoRAAdapters(config: LoRAConfig(rank: rank, alpha: alpha, targets: .names(targets)), model: config)
        try LoRAInitialisation.svdDelta(adapters, factors: (output as NSString).appendingPathComponent("factors.safetensors"))
        student.adapters = adapters

        // The reference: every adapted module's weight plus its ΔW truncated to rank R by an exact SVD.
        let merged = try HFCheckpoint.load(folder: folders.base)
        for a in adapters.adapters {
            let truncated = try LAPACK.svd(folders.deltas[a.module.path]!).reconstruct(rank: rank)
            Fixture.add(truncated, to: a.module, of: merged)
        }
        let ids: [Int32] = (0..<24).map { Int32($0 * 7 % config.vocabularySize) }
        student.forward(ids: ids, B: 2, T: 12)
        merged.forward(ids: ids, B: 2, T: 12)
        let a = student.logits.scalars, e = merged.logits.scalars
        let worst = zip(a, e).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-4 * max(1, e.map(abs).max() ?? 1), "\(family) alpha \(alpha): logits differ by \(worst)")
    }
}
