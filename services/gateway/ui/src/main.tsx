import "uplot/dist/uPlot.min.css";
import "./styles.css";
import { render } from "preact";
import { App } from "./app";
import { prefetch } from "./prefetch";

prefetch(window.location);

render(<App />, document.getElementById("app")!);
