/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: load-time configuration.
 *   DECLARE_CONFIG(type)  defines `const volatile type CONFIG`, the object's one
 *                         constant block (in .rodata). The agent writes it before
 *                         load; the map is frozen, so the verifier reads its
 *                         values as constants and prunes every branch they
 *                         decide: a feature an endpoint lacks costs nothing.
 *   CONFIG_HAS(flag)      test a bit of CONFIG.flags.
 */
#ifndef TND_CONFIG_H
#define TND_CONFIG_H

#define DECLARE_CONFIG(type) const volatile type CONFIG = {}

#define CONFIG_HAS(flag) ((CONFIG.flags & (flag)) != 0)

#endif /* TND_CONFIG_H */
