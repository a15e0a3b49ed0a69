package main

import "github.com/shopcheckout/shop/internal/stripesim"

// demoProducts is the demo's Stripe catalogue, kept by the simulator: the
// shop reads it as it would read an account's (CATALOG_SOURCE=stripe).
// Images are the shop's own, at shopURL.
func demoProducts(shopURL string) []stripesim.SeedProduct {
	return []stripesim.SeedProduct{
		{ID: "prod_demo_tshirt", Name: "T-shirt", Description: "Comfortable cotton T-shirt", Images: []string{shopURL + "/static/tshirt.svg"},
			Prices: []stripesim.SeedPrice{{ID: "price_demo_tshirt", UnitAmount: 2000, Currency: "usd"}}},
		{ID: "prod_demo_mug", Name: "Mug", Description: "Stoneware mug, 350 ml", Metadata: map[string]string{"stock": "25"},
			Prices: []stripesim.SeedPrice{{ID: "price_demo_mug", UnitAmount: 1200, Currency: "usd"}}},
		{ID: "prod_demo_print", Name: "Signed print", Description: "A3 print, signed; a run of 5", Metadata: map[string]string{"stock": "5", "max_quantity": "2"},
			Prices: []stripesim.SeedPrice{{ID: "price_demo_print", UnitAmount: 4500, Currency: "usd"}}},
	}
}

// demoLink is a Payment Link selling a mug, as an owner might share one
// from the Dashboard.
func demoLink() stripesim.SeedPaymentLink {
	return stripesim.SeedPaymentLink{ID: "plink_demo_mug", LineItems: []stripesim.SeedLinkLine{{Price: "price_demo_mug", Quantity: 1}}}
}
