import Foundation
import Testing
import SubspaceTestSupport
@testable import SubspaceStudies

/// configs/pipeline.yaml's keys for fair comparisons: seeds, the shared budget, per-method sweeps.
@Suite struct PipelineConfigTests {
    func load(_ yaml: String) throws -> PipelineConfig {
        let folder = try TestFiles.temporaryFolder("pipeline-config")
        defer { TestFiles.cleanUp(folder) }
        try TestFiles.write(yaml, to: folder + "/p.yaml")
        return try PipelineConfig.load(path: folder + "/p.yaml")
    }

    func problem(_ yaml: String) -> String {
        do { _ = try load(yaml); return "" } catch { return "\(error)" }
    }

    @Test func theShippedConfigIsFair() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let c = try PipelineConfig.load(path: root + "/configs/pipeline.yaml")
        #expect(c.seeds.count >= 3)
        #expect(c.budgetSteps != nil)
        #expect(c.teacherLearningRates.count >= 3 && c.learningRates.count >= 3)
        #expect(c.maxExtensions >= 1)
        #expect(c.ranks.allSatisfy { $0 <= c.analysisRank })
    }

    @Test func readsSeedsBudgetAndSweeps() throws {
        let c = try load("seeds: [3, 1, 2]\nbudget: {steps: 120}\nteacher: {config: t.yaml, learning_rates: [0.001, 0.0001]}\nstudents: {config: s.yaml, learning_rates: [0.01], max_extensions: 3}\n")
        #expect(c.seeds == [3, 1, 2])
        #expect(c.budgetSteps == 120)
        #expect(c.teacherLearningRates == [0.0001, 0.001])
        #expect(c.learningRates == [0.01] && c.maxExtensions == 3)
    }

    @Test func badValuesNameTheirKey() {
        #expect(problem("seeds: [1, 1]\n").contains("'seeds'"))
        #expect(problem("seeds: []\n").contains("'seeds'"))
        #expect(problem("budget: {steps: 0}\n").contains("'budget.steps'"))
        #expect(problem("budget: {stpes: 10}\n").contains("'budget.stpes'"))
        #expect(problem("teacher: {config: t.yaml, learning_rates: [0.001, -1]}\n").contains("'teacher.learning_rates'"))
        #expect(problem("students: {config: s.yaml, max_extensions: 20}\n").contains("'students.max_extensions'"))
        #expect(problem("students: {config: s.yaml, ranks: [4, 4]}\nanalysis: {rank: 8}\n").contains("'students.ranks'"))
    }
}
