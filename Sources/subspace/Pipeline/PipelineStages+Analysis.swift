import Foundation

extension PipelineStages {
    /// ΔW = teacher − base per linear module, its spectrum and rank-R factors (→ `output/analysis`).
    func analysis(base: String, teacher: String) throws -> String {
        throw PipelineConfig.Problem(description: "analysis stage: not wired yet")
    }

    /// The comparison report of teacher and students (→ `output/report`); returns report.html's path.
    func compare(base: String, teacher: String, students: [(String, String)], analysis: String) throws -> String {
        throw PipelineConfig.Problem(description: "compare stage: not wired yet")
    }
}
