import Foundation

/// The three plots of a ΔW analysis.
public enum DeltaPlots {
    /// Singular spectra per module kind: σᵢ/σ₁ on a log scale, the kind's mean bold and each layer thin.
    public static func spectra(_ analysis: DeltaAnalysis) -> SVGDocument {
        var chart = LineChart(title: "Singular spectra of ΔW by module kind (rank R = \(analysis.rank), \(analysis.method.rawValue) SVD)",
                              xLabel: "index i", yLabel: "σᵢ / σ₁")
        chart.logY = true
        let kinds = presentKinds(analysis)
        for (c, kind) in kinds.enumerated() {
            let color = Palette.color(c)
            let curves: [[Double]] = analysis.layers.filter { $0.kind == kind }.compactMap { l in
                guard let top = l.singularValues.first, top > 0 else { return nil }
                return l.singularValues.map { Double($0) / Double(top) }
            }
            for curve in curves where curves.count > 1 {
                chart.series.append(.init(label: kind.rawValue, color: color, points: points(curve), width: 0.8, opacity: 0.25, inLegend: false))
            }
            let mean = meanCurve(curves)
            chart.series.append(.init(label: "\(kind.rawValue) (mean of \(curves.count))", color: color, points: points(mean), width: 2.2))
        }
        chart.verticalLines = [(Double(analysis.rank), "R = \(analysis.rank)")]
        chart.notes = ["thin: one layer each", "bold: mean over layers"]
        return chart.render()
    }

    /// Cumulative energy Σ_{i≤k} σᵢ² / ‖ΔW‖_F² against k, mean per module kind.
    public static func cumulativeEnergy(_ analysis: DeltaAnalysis) -> SVGDocument {
        var chart = LineChart(title: "Cumulative energy of ΔW against rank", xLabel: "rank k", yLabel: "energy kept Σ_{i≤k} σᵢ² / ‖ΔW‖²")
        let longest = analysis.layers.map(\.singularValues.count).max() ?? 1
        chart.logX = longest > 256
        chart.yRange = 0...1.02
        for (c, kind) in presentKinds(analysis).enumerated() {
            let curves = analysis.layers.filter { $0.kind == kind && $0.totalEnergy > 0 }.map { $0.spectrum.cumulativeEnergy }
            chart.series.append(.init(label: "\(kind.rawValue) (mean of \(curves.count))", color: Palette.color(c), points: points(meanCurve(curves))))
        }
        chart.verticalLines = [(Double(analysis.rank), "R = \(analysis.rank)")]
        chart.horizontalLines = analysis.energyFractions.map { ($0, "\(Ticks.label($0 * 100))%") }
        if analysis.method == .randomized { chart.notes = ["randomized: leading R + p values", "over the exact ‖ΔW‖²"] }
        return chart.render()
    }

    /// Energy kept at rank R for each layer (rows) and module kind (columns).
    public static func energyHeatmap(_ analysis: DeltaAnalysis) -> SVGDocument {
        let kinds = presentKinds(analysis)
        let depths = Set(analysis.layers.map(\.layer)).sorted()
        var map = Heatmap(title: "Energy of ΔW kept at rank R = \(analysis.rank)", xLabel: "module",
                          yLabel: "layer", valueLabel: "energy")
        map.columnLabels = kinds.map(\.rawValue)
        map.rowLabels = depths.map { "layer \($0)" }
        map.values = depths.map { d in
            kinds.map { k in analysis.layers.first { $0.layer == d && $0.kind == k }?.energyAtRank }
        }
        return map.render()
    }

    static func presentKinds(_ analysis: DeltaAnalysis) -> [ModuleKind] {
        Set(analysis.layers.map(\.kind)).sorted()
    }

    static func points(_ ys: [Double]) -> [(x: Double, y: Double)] {
        ys.enumerated().map { (Double($0.offset + 1), $0.element) }
    }

    /// Element-wise mean of curves of possibly different lengths (each index over the curves that reach it).
    static func meanCurve(_ curves: [[Double]]) -> [Double] {
        let n = curves.map(\.count).max() ?? 0
        return (0..<n).map { i in
            let column = curves.compactMap { i < $0.count ? $0[i] : nil }
            return column.reduce(0, +) / Double(max(column.count, 1))
        }
    }
}
