import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
@testable import SubspaceAnalysis

@Suite struct PlotTests {
    @Test func analysisPlotsAreWellFormedSVG() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        for method in SVDMethod.allCases {
            let folders = try Fixture.folders(in: scratch, Fixture.gpt2)
            let outcome = try #require(try LocalCluster.run(size: 2) { comm in
                try DeltaAnalyzer.run(source: try HFFolderDeltaSource(base: folders.base, tuned: folders.tuned),
                                      options: DeltaAnalysisOptions(rank: 2, method: method, oversampling: 2), communicator: comm)
            }[0])
            let files = try DeltaAnalysisWriter.write(outcome, to: scratch.folder("plots"))
            for path in files.plots {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                let problem = xmlProblem(text)
                #expect(problem == nil, "\(path): \(problem ?? "")")
                #expect(text.contains("<text") && text.contains("<line"), "\(path) has axes and labels")
                #expect(!text.contains("href") && !text.contains("<image") && !text.contains("<script"), "\(path) is self-contained")
            }
            let spectra = try String(contentsOfFile: files.spectra, encoding: .utf8)
            for kind in ["qkv", "o", "up", "down"] { #expect(spectra.contains(">\(kind) (mean of 2)<"), "legend entry \(kind)") }
            #expect(spectra.contains("log scale"))
            let heatmap = try String(contentsOfFile: files.energyHeatmap, encoding: .utf8)
            #expect(heatmap.contains(">layer 1<") && heatmap.contains(">energy<"))
        }
    }

    @Test func textIsEscaped() throws {
        var chart = LineChart(title: "a <b> & \"c\"", xLabel: "x's", yLabel: "y")
        chart.series = [.init(label: "σ < 1 & more", color: Palette.color(0), points: [(1, 1), (2, 0.5)])]
        chart.logY = true
        #expect(xmlProblem(chart.render().xml) == nil)
        var bars = BarChart(title: "<bars>", xLabel: "&", yLabel: "y")
        bars.categories = ["a<b", "c&d"]
        bars.series = [.init(label: "s\"1", color: Palette.color(1), values: [0.5, nil])]
        #expect(xmlProblem(bars.render().xml) == nil)
        var map = Heatmap(title: "h", xLabel: "x", yLabel: "y", valueLabel: "v")
        map.rowLabels = ["r<0"]
        map.columnLabels = ["c&0", "c1"]
        map.values = [[0.25, nil]]
        #expect(xmlProblem(map.render().xml) == nil)
        // Degenerate inputs still render.
        #expect(xmlProblem(LineChart(title: "empty", xLabel: "x", yLabel: "y").render().xml) == nil)
    }

    @Test func ticks() {
        #expect(Ticks.linear(0, 1) == [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1] || Ticks.linear(0, 1).count == 6)
        #expect(Ticks.logarithmic(1e-3, 1) == [1e-3, 1e-2, 1e-1, 1])
        #expect(Ticks.label(1e-4) == "1e-4" && Ticks.label(0.25) == "0.25" && Ticks.label(3) == "3")
    }
}
