// @slow
// CI runs 800 seeds, split over two suites so the parallel runner can overlap them.
import { seedSuite } from './seeds.js';

seedSuite(0, 400, 4000);
